"""Backends: the only modules that import docker. Container labels stay in here."""
