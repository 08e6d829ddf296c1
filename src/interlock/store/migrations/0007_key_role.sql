-- A key's rights on the admin API: '' (none), 'admin_read' (GET /admin/* only).
ALTER TABLE keys ADD COLUMN role TEXT NOT NULL DEFAULT '';
