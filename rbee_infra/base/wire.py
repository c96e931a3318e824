"""Names on the wire between the program and its providers (both import this)."""

# The plain inputs a Hive or Worker registers as one property (see
# `stack.resources.InstallArgs.props`). The providers read them spread out, as flat inputs
# (`decide.plan.public_props`), so state, Diff and every handler see what they saw before.
SETTINGS = "settings"
