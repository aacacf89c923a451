"""The ML core: sparse matrices in, models and metrics out. No Flask, no peewee."""
