"""Maps the import names users write onto the repository's top-level folders:

    dunetrace               <- dunetrace_core/
    dunetrace.integrations  <- integrations/
    dunetrace.collector     <- collector/
    dunetrace.examples      <- examples/

Subpackages are found below each folder, so a new integration package needs
no change here. Everything else is in pyproject.toml.
"""

from setuptools import find_packages, setup

FOLDERS = {
    "dunetrace": "dunetrace_core",
    "dunetrace.integrations": "integrations",
    "dunetrace.collector": "collector",
    "dunetrace.examples": "examples",
}

packages = []
package_dir = {}
for name, folder in FOLDERS.items():
    package_dir[name] = folder
    packages.append(name)
    for sub in find_packages(folder):
        packages.append(f"{name}.{sub}")
        package_dir[f"{name}.{sub}"] = f"{folder}/{sub.replace('.', '/')}"

setup(packages=packages, package_dir=package_dir)
