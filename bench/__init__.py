"""`make bench`: PodSet under playbook-operator, the Operator SDK's ansible-operator and the native
ReplicaSet controller, one after the other on the same local cluster (``python -m bench``)."""
