"""E-mail: an action as a plain-text and HTML message sent through ``[automations.smtp]``.

It goes to the destination's ``to`` addresses and, for actions with ``to_owner``, to the
account owner's. Values come from visitors and CRMs: every one is HTML-escaped in the HTML
part, and CR, LF and other control characters are taken out of the subject and names, so no
header can be added; an address that is not a plain ``local@domain`` is left out. The
Message-ID is derived from the action's id, so a message sent twice (at-least-once delivery)
is one message to mail clients that deduplicate; ``X-Refract-Action`` names the action.

The SMTP server is not put through the SSRF guard (ssrf.py): its host is the operator's own
``[automations.smtp]`` (often a relay on the private network), never a value from a rule file,
an event or an API body, and the connection only carries the message.

SMTP replies map like HTTP statuses (``Delivery.status`` holds the SMTP code): 4xx, timeouts
and lost connections are retried; 5xx (the server refuses for good) is permanent.
"""

from __future__ import annotations

import html
import re
from email.headerregistry import Address
from email.message import EmailMessage

import aiosmtplib

from refract.analytics.automations.actions import Action, Delivery, SendContext
from refract.analytics.automations.render import Message, message, one_line

MAX_SUBJECT = 200
MAX_RECIPIENTS = 50
_ADDRESS = re.compile(
    r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}"
)
_SENDER = re.compile(r"[^@\s<>,;\"]+@[A-Za-z0-9.-]+")  # "refract@localhost" is fine here
_ID_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


async def send(ctx: SendContext, action: Action) -> Delivery:
    """Send the action's message to its recipients through the configured SMTP server."""
    recipients = recipients_of(ctx.destination.to, action)
    if not recipients:
        return Delivery(ok=False, status=None, detail="no valid recipient", permanent=True)
    smtp = ctx.config.smtp
    if not _SENDER.fullmatch(smtp.sender):
        return Delivery(ok=False, status=None, detail="smtp sender is no address", permanent=True)
    mail = build(action, smtp.sender, recipients)
    await ctx.throttle()
    try:
        refused, reply = await aiosmtplib.send(
            mail,
            hostname=smtp.host,
            port=smtp.port,
            username=smtp.username or None,
            password=smtp.password or None,
            use_tls=smtp.security == "tls",
            start_tls=smtp.security == "starttls",
            timeout=ctx.destination.timeout,
        )
    except aiosmtplib.SMTPRecipientsRefused as error:
        return _refused([(each.code, each.message) for each in error.recipients])
    except aiosmtplib.SMTPResponseException as error:
        return _reply(error.code, error.message)
    except aiosmtplib.SMTPTimeoutError:
        return Delivery(
            ok=False, status=None, detail=f"timeout after {ctx.destination.timeout:g} s"
        )
    except aiosmtplib.SMTPNotSupported as error:
        return Delivery(ok=False, status=None, detail=one_line(error, 200), permanent=True)
    except (aiosmtplib.SMTPException, OSError) as error:
        return Delivery(ok=False, status=None, detail=one_line(f"connection: {error}", 200))
    detail = one_line(reply, 200)
    if refused:
        detail += f" ({len(refused)} of {len(recipients)} recipients refused)"
    return Delivery(ok=True, status=250, detail=detail)


def recipients_of(addresses: list[str], action: Action) -> list[Address]:
    """The destination's addresses and, with ``to_owner``, the owner's: valid, each once."""
    candidates = [("", address) for address in addresses]
    owner = action["facts"].get("owner")
    if action["to_owner"] and owner and owner.get("email"):
        candidates.append((owner.get("name") or "", owner["email"]))
    chosen: dict[str, Address] = {}
    for name, address in candidates:
        address = address.strip()
        if valid_address(address) and address.lower() not in chosen:
            local, domain = address.rsplit("@", 1)
            chosen[address.lower()] = Address(one_line(name, 100), local, domain)
    return list(chosen.values())[:MAX_RECIPIENTS]


def valid_address(address: str) -> bool:
    return len(address) <= 254 and _ADDRESS.fullmatch(address) is not None


def build(action: Action, sender: str, recipients: list[Address]) -> EmailMessage:
    """The message: headers free of data's line breaks, a text part and an HTML part."""
    shown = message(action)
    mail = EmailMessage()
    mail["Subject"] = one_line(shown.title, MAX_SUBJECT) or "Refract automation"
    mail["From"] = sender
    mail["To"] = recipients
    mail["Message-ID"] = message_id(action, sender)
    mail["X-Refract-Action"] = _safe_id(action["id"])
    mail["Auto-Submitted"] = "auto-generated"  # RFC 3834: no out-of-office replies
    mail.set_content(text(shown))
    mail.add_alternative(page(shown), subtype="html")
    return mail


def message_id(action: Action, sender: str) -> str:
    """The same Message-ID for every send of one action (its idempotency key)."""
    return f"<{_safe_id(action['id'])}@{sender.rsplit('@', 1)[1]}>"


def text(shown: Message) -> str:
    lines = [shown.title, ""]
    if shown.account:
        lines += [shown.account, *([shown.about] if shown.about else []), ""]
    lines += [f"{fact.label}: {fact.value}" for fact in shown.facts]
    for heading, items in (("Why", shown.reasons), ("Pages seen", shown.pages)):
        if items:
            lines += ["", f"{heading}:", *(f"- {item}" for item in items)]
    if shown.links:
        lines += ["", *(f"{link.label}: {link.url}" for link in shown.links)]
    lines += ["", shown.footer]
    return "\n".join(lines) + "\n"


def page(shown: Message) -> str:
    """The HTML part; every value escaped, nothing from data unescaped."""
    e = html.escape
    parts = [f"<h2>{e(shown.title)}</h2>"]
    if shown.account:
        parts.append(f"<p><strong>{e(shown.account)}</strong>")
        parts.append(f"<br>{e(shown.about)}</p>" if shown.about else "</p>")
    if shown.facts:
        rows = "".join(
            f"<tr><th align='left'>{e(fact.label)}</th><td>{e(fact.value)}</td></tr>"
            for fact in shown.facts
        )
        parts.append(f"<table>{rows}</table>")
    for heading, items in (("Why", shown.reasons), ("Pages seen", shown.pages)):
        if items:
            listed = "".join(f"<li>{e(item)}</li>" for item in items)
            parts.append(f"<h3>{e(heading)}</h3><ul>{listed}</ul>")
    if shown.links:
        links = " · ".join(f"<a href='{e(link.url)}'>{e(link.label)}</a>" for link in shown.links)
        parts.append(f"<p>{links}</p>")
    parts.append(f"<p style='color:#666;font-size:small'>{e(shown.footer)}</p>")
    return "<!doctype html><html><body>" + "".join(parts) + "</body></html>\n"


def _reply(code: int, reply: str) -> Delivery:
    detail = one_line(f"{code} {reply}", 200)
    return Delivery(ok=False, status=code, detail=detail, permanent=500 <= code < 600)


def _refused(replies: list[tuple[int, str]]) -> Delivery:
    """Every recipient refused: retried if any refusal was temporary (4xx)."""
    code, reply = min(replies, key=lambda each: each[0]) if replies else (550, "refused")
    delivery = _reply(code, reply)
    return Delivery(
        ok=False,
        status=delivery.status,
        detail=f"every recipient refused: {delivery.detail}",
        permanent=delivery.permanent,
    )


def _safe_id(action_id: str) -> str:
    return _ID_UNSAFE.sub("", action_id)[:64] or "action"
