"""Budgets, rate limits, shared counters (in-process or Redis) and the spend-velocity guard."""
