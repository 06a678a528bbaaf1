"""Backends: the only modules that import docker or boto3. Labels and tags stay in here."""
