"""Profiles (profiles/*.toml) and table declarations (*.toml), installed as the package data repro.ablations."""
