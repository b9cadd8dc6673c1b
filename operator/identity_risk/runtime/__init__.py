"""Runtime: kopf handlers, the live inventory and the live engine that wire the core to a cluster."""
