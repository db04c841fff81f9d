"""playbook-operator: a Kubernetes operator whose logic lives in Ansible roles."""

__version__ = "0.1.0"
