"""The audit trail: recording one event per governed change (`trail`), the hash chain and
its verification (`chain`), reads with their filters (`selectors`), the export service
(`services`) and its formats (`exports`), and `errors`. docs/audit.md is the guide."""
