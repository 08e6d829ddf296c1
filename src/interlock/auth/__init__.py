"""Who is calling: virtual keys, the admin key, principals and their scopes."""
