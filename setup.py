"""Ships the top-level ablations/ folder (profiles and table declarations) as the package repro.ablations.

pyproject.toml cannot both find packages and map one folder to a package name, so this file does only that;
everything else is in pyproject.toml.
"""

from setuptools import find_packages, setup

setup(packages=[*find_packages(include=["repro*"]), "repro.ablations"], package_dir={"repro.ablations": "ablations"})
