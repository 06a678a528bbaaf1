"""The forge: Gitea (and Forgejo) REST calls out, verified webhooks in.

The only package that imports httpx (apart from the registry client). Every failure surfaces as
`reconciler.errors.ForgeError`, naming the call and the HTTP status and never the token.
"""
