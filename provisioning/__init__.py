"""WardWatch provisioning: turning boards and hosts into a deployment, and the local stack
that runs a whole deployment on one machine (``provisioning.stack``)."""
