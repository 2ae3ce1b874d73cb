"""Feature flags (django-waffle) as governed configuration: `services` (every write: flags'
settings, adding and deleting flags, switches and samples, metadata), `selectors` (reads,
and the one reading of a flag for an actor), `rollout` (who has a flag, and what a change
does to that), `gates` (FlagRequired and @flag_required for views), `errors`.
docs/flags.md is the guide.
"""
