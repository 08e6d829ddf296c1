"""Who may do what: virtual keys, scopes and, later, budgets, rate limits and audit."""
