"""Model config files (INI) and the input_shape entries they may carry."""

import re

# One "name:[d0,d1,...]" item of input_shape; items are separated by ';'.
_SHAPE_ITEM = re.compile(r"^\s*(?P<name>[^;\[\]]+?)\s*:\s*\[(?P<dims>[^\]]*)\]\s*$")


_INLINE_COMMENT = re.compile(r"[ \t]#.*$", re.S)


def read_ini(path):
    """The sections of an INI file: {section: {key: value}} with keys and values trimmed.

    '#' and ';' lines are comments, and so is the rest of a line from a '#' that follows a space
    or tab ("rank=1   # this process"; not ';', which separates input_shape's items); entries
    before any section go to section ''. A UTF-8 byte-order mark at the start is skipped.
    Unknown sections are kept. Raises RuntimeError naming the line for text that is not an
    entry.
    """
    sections = {}
    current = sections.setdefault("", {})
    with open(path, encoding="utf-8-sig", errors="replace") as f:
        for number, raw in enumerate(f, 1):
            line = _INLINE_COMMENT.sub("", raw).strip()
            if not line or line[0] in "#;":
                continue
            if line.startswith("[") and line.endswith("]") and "=" not in line:
                current = sections.setdefault(line[1:-1].strip(), {})
                continue
            key, sep, value = line.partition("=")
            if not sep or not key.strip():
                raise RuntimeError(f"load configuration failed! Error is {path}:{number}: "
                                   f"expected 'key=value' or '[section]', got {line!r}")
            current[key.strip()] = value.strip()
    if not sections[""]:
        del sections[""]
    return sections


def merge(base, overrides):
    """base with overrides' entries replacing its own, section by section (new dicts)."""
    merged = {section: dict(entries) for section, entries in base.items()}
    for section, entries in (overrides or {}).items():
        merged.setdefault(section, {}).update(entries)
    return merged


def lookup(config, key):
    """The value of key in the first section that has it ('' if none)."""
    for entries in config.values():
        if key in entries:
            return entries[key]
    return ""


def parse_input_shape(text):
    """{name: [dims]} from 'x:[2,8];y:[3]'. Raises ValueError for malformed text."""
    shapes = {}
    for item in filter(None, (part.strip() for part in text.split(";"))):
        m = _SHAPE_ITEM.match(item)
        if m is None:
            raise ValueError(f"input_shape item {item!r} is not 'name:[d0,d1,...]'")
        dims = [d.strip() for d in m.group("dims").split(",") if d.strip()]
        try:
            shapes[m.group("name")] = [int(d) for d in dims]
        except ValueError:
            raise ValueError(f"input_shape item {item!r} has a dimension that is not an "
                             "integer") from None
    return shapes
