"""Runners on other engines: ``ray`` (describe a Ray dataset with one rate limit for the
whole cluster). Each is imported only when used, and its engine only when called."""
