"""Test doubles that ship with the package: a stub upstream server we own."""
