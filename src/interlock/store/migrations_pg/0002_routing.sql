-- Which deployment served the request, and how many attempts failover made.
ALTER TABLE usage ADD COLUMN deployment TEXT NOT NULL DEFAULT '';
ALTER TABLE usage ADD COLUMN attempts INTEGER NOT NULL DEFAULT 1;
