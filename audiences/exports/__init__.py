"""Exports of an audience's members: `services` (request, download link, the download, expiry),
`selectors` (reads scoped to the actor), `columns` (what may be exported and how a row is
written, masked or not), `storage` (where files go: a temp name, renamed on success),
`runner` (the worker side: stream the live version's members to a file), `errors`.
docs/exports.md is the guide."""
