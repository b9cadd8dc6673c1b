"""Effects: carry decisions out (the authorization webhook state, pod, secret and policy writes)."""
