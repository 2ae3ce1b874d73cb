"""Configuration admins keep: environments, approval and quota policies, teams and people
(`services`), the validators the services and the admin forms share (`validators`), the
actions an approval policy may name (`selectors`), and `errors`."""
