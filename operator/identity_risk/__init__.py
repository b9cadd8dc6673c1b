"""identity-risk-operator: workload-identity risk that acts.

Identity events create risk, policy evaluates the risk, and enforcement executes the outcome.
The package is laid out along that loop: ``ingest`` → ``signals`` → ``scoring`` → ``policy``
(the pure core, no I/O), then the effects. ``api`` holds the custom-resource models.
"""

__version__ = "0.1.0"
