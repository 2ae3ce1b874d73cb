"""Access: API tokens and service accounts (`services`, `selectors`, `errors`), the
environment a request acts in (`selectors`), authentication of tokens and portal
sessions (`auth`), and object permissions for owned objects (`objectperms`)."""
