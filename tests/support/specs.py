"""Journey specs that more than one engine test runs, as YAML with a ``{key}`` to fill in."""

# The seeds' abandoned cart: 1 h reminder, +1 d discount, +3 d last chance, purchase converts.
ABANDONED_CART = """
key: {key}
name: Abandoned cart recovery
trigger: {{event: cart.abandoned, correlate: cart_id}}
goal: {{event: order.completed}}
exit_on: [{{event: contact.unsubscribed}}]
steps:
  - id: wait-1h
    wait: PT1H
  - id: reminder
    send: {{channel: email, template: cart-reminder}}
  - id: opened?
    wait_for: {{event: email.opened, message: reminder, timeout: P1D}}
    on_timeout: discount
    next: done
  - id: discount
    send: {{channel: email, template: cart-discount, data: {{code: SAVE10}}}}
  - id: wait-3d
    wait: P3D
  - id: last-chance
    send: {{channel: email, template: cart-last-chance}}
  - id: done
    exit: {{reason: finished}}
"""

# Two sends a second apart: a wait short enough to skip the bookkeeping before it.
SHORT_WAIT = """
key: {key}
name: Short pause
trigger: {{event: user.signed_up}}
steps:
  - id: hello
    send: {{channel: email, template: short-hello}}
  - id: pause
    wait: PT1S
  - id: again
    send: {{channel: email, template: short-hello}}
  - id: done
    exit: {{}}
"""
