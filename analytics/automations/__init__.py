"""Revenue automation: triggers evaluated as events are applied, an outbox of actions, and
their delivery to Slack, Teams, e-mail, webhooks and CRMs (docs/automations.md)."""
