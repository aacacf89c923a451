"""Packaging beyond what setup.cfg can say: the top-level migrations/ folder (where the design keeps
it) ships inside the wheel as the package airec.migrations, so an installed service migrates its
database without a checkout (airec/db/migrations.py looks there first). Everything else is in setup.cfg.
"""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["airec", "airec.*"]), "airec.migrations"],
    package_dir={"airec.migrations": "migrations"},
)
