"""Argument checks raising the reference's exception types with its message style."""


def check_type(name, value, types, type_name=None):
    """value if it is an instance of types, else TypeError '<name> must be <T>, but got <t>.'

    bool never passes for int (True is not a thread count).
    """
    if not isinstance(value, types) or (isinstance(value, bool) and bool not in _tuple(types)):
        if type_name is None:
            type_name = " or ".join(t.__name__ for t in _tuple(types))
        raise TypeError(f"{name} must be {type_name}, but got {type(value)}.")
    return value


def _tuple(types):
    return types if isinstance(types, tuple) else (types,)


def check_list(name, value, types, type_name=None, containers=(list,)):
    """A list whose elements are instances of types (TypeError naming the bad index)."""
    check_type(name, value, containers, " or ".join(c.__name__ for c in containers))
    for i, item in enumerate(value):
        if not isinstance(item, types) or (isinstance(item, bool) and bool not in _tuple(types)):
            if type_name is None:
                type_name = " or ".join(t.__name__ for t in _tuple(types))
            raise TypeError(f"{name} element must be {type_name}, but got {type(item)} "
                            f"at index {i}.")
    return value


def check_non_negative(name, value, message=None):
    """An int >= 0: TypeError for another type, ValueError for a negative one."""
    check_type(name, value, int)
    if value < 0:
        raise ValueError(message or f"{name} must be a non-negative int.")
    return value


def check_choice(name, value, choices):
    """A str among choices (exact match), else TypeError / ValueError listing them."""
    check_type(name, value, str)
    if value not in choices:
        raise ValueError(f"{name} must be in [{', '.join(choices)}], but got {value}.")
    return value


def check_config(name, value):
    """A dict[str, dict[str, str]] (the shape of config files), else TypeError."""
    check_type(name, value, dict)
    for section, entries in value.items():
        check_type(f"{name}_key", section, str)
        check_type(f"{name}_value", entries, dict)
        for key, item in entries.items():
            check_type(f"{name}_value_key", key, str)
            check_type(f"{name}_value_value", item, str)
    return value
