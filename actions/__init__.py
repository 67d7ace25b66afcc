"""Rasa custom actions: read the tracker, call `cobrador`, answer. Thin."""
