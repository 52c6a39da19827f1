"""The janitor Lambda: deletes the queues of replicas that stopped heart-beating (see core.py)."""
