#!/usr/bin/env python3
"""Validates a CycloneDX JSON document against the schema of the specVersion it declares.

Usage: validate-cyclonedx.py FILE   (exit 0 when valid, 1 with the errors on stderr otherwise)
"""
import json
import sys

from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    with open(sys.argv[1], encoding="utf-8") as f:
        text = f.read()
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        print(f"{sys.argv[1]}: not JSON: {e}", file=sys.stderr)
        return 1
    if doc.get("bomFormat") != "CycloneDX":
        print(f"{sys.argv[1]}: bomFormat is {doc.get('bomFormat')!r}, not 'CycloneDX'", file=sys.stderr)
        return 1
    try:
        version = SchemaVersion.from_version(str(doc.get("specVersion")))
    except ValueError:
        print(f"{sys.argv[1]}: unknown specVersion {doc.get('specVersion')!r}", file=sys.stderr)
        return 1
    errors = JsonStrictValidator(version).validate_str(text, all_errors=True)
    if errors:
        for error in errors:
            # error.data is jsonschema's error, whose str() repeats the whole schema fragment.
            detail = getattr(error, "data", None)
            where = getattr(detail, "json_path", "$")
            message = getattr(detail, "message", None) or str(error)
            print(f"{sys.argv[1]}: {where}: {message}", file=sys.stderr)
        return 1
    print(f"{sys.argv[1]}: valid CycloneDX {version.to_version()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
