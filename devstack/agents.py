"""Reference agents acting on payments through the payments API, over HTTP.

Each agent calls the local stack's HTTP gateway (``devstack.gateway``) with the API client
(``payledger_client``) as a principal of its own: requests signed with SigV4 by credentials of a
role named after the agent (``agent_clients``). ``plan_payments`` decides, from a seed only, what
every agent will do to each payment and what must come of it; ``run_workload`` carries the plans
out interleaved (one step of each payment in turn, as concurrent agents would) and checks every
answer.

The agents: checkout (creates payments; its client sometimes retries a create), a fraud agent
(scores and decides; reviews go to an operator), an authorisation agent whose processor
sometimes declines or times out (retried with the same idempotency key, also when the ledger's
answer was lost), a capture agent (full, partial and final captures; an over-capture it must be
refused; client retries), support (voids, refunds), settlement, and hold expiry.
"""

from __future__ import annotations

import random
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.credentials import Credentials

from ledger.domain.money import format_amount
from ledger.envelope import Actor
from payledger_client import CommandOptions, CommandResult, PayledgerClient, PayledgerError

DEFAULT_PAYMENTS = 150
DEFAULT_SEED = 7
CREATED, REPLAYED = "created", "replayed"
CREATE = "create"
HOLD_SHORT_S = 3  # holds the expiry agent lets lapse
CURRENCIES = (("EUR", 0.5), ("USD", 0.3), ("JPY", 0.2))
MERCHANTS = 8
PROCESSOR = "acme-pay"
# A sandbox's first request may wait for the API function's cold start (its 10 s timeout plus
# the init phase) before the gateway answers; an agent that gave up earlier would count as a
# failed request what the ledger recorded.
REQUEST_TIMEOUT_S = 60.0

CHECKOUT = Actor("api", "checkout")
FRAUD = Actor("agent", "fraud-agent", model="risk-gbm", version="2026.11")
REVIEWER = Actor("operator", "risk-ops-1")
AUTHORISATION = Actor("agent", "authorisation-agent", model="router-bandit", version="3")
CAPTURE = Actor("agent", "capture-agent", version="1.4")
SUPPORT = Actor("operator", "support-2")
SETTLEMENT = Actor("system", "settlement")
EXPIRY = Actor("system", "hold-expiry")
ACTORS = (CHECKOUT, FRAUD, REVIEWER, AUTHORISATION, CAPTURE, SUPPORT, SETTLEMENT, EXPIRY)


def agent_clients(
    api_url: str, region: str, credentials_of: Callable[[str], tuple[str, str, str]]
) -> dict[str, PayledgerClient]:
    """A client per agent, keyed by its id, signing as the role named after it
    (``credentials_of(name)``: access key id, secret access key, session token).

    The clients never retry on their own: every retry the workload makes is a step of its plan,
    sent with the plan's idempotency key, so each request counted is one request sent."""
    return {
        agent.id: PayledgerClient(
            api_url,
            region=region,
            credentials=Credentials(*credentials_of(agent.id)),
            timeout_s=REQUEST_TIMEOUT_S,
            retries_max=0,
        )
        for agent in ACTORS
    }


# ── Plans ────────────────────────────────────────────────────────────────────────────────────


@dataclass(frozen=True, slots=True)
class Step:
    """One request an agent makes, and what must come of it: ``created`` (201), ``replayed``
    (200, nothing new) or the code of the error the ledger must refuse it with. ``action`` is
    the route's last segment (``captures``…), or ``create``."""

    agent: Actor
    payment_id: str
    action: str
    key: str
    expect: str
    body: Mapping[str, Any] | None = None
    answer_lost: bool = False  # the request lands but the client never sees the answer
    wait_s: float = 0  # at least this long after the payment's previous step
    hold_s: float | None = None  # authorise with a hold this many seconds long
    note: str = ""

    @property
    def route(self) -> str:
        if self.action == CREATE:
            return "POST /payments"
        return f"POST /payments/{self.payment_id}/{self.action}"


@dataclass
class PaymentPlan:
    payment_id: str
    currency: str
    amount_minor: int
    merchant_id: str
    status: str  # what the payment must end as
    steps: list[Step] = field(default_factory=list)
    processor_timeouts: int = 0

    def add(self, agent: Actor, action: str, expect: str = CREATED, **options: Any) -> None:
        key = options.pop("key", f"{self.payment_id}:{action}:{len(self.steps)}")
        self.steps.append(Step(agent, self.payment_id, action, key, expect, **options))

    def money(self, amount_minor: int) -> str:
        return format_amount(amount_minor, self.currency)


def plan_payments(count: int, seed: int, run: str) -> list[PaymentPlan]:
    """What the agents will do to ``count`` payments; the decisions depend on ``seed`` only
    (``run`` keeps payment ids apart when a stack sees several runs)."""
    return [
        # A reproducible workload, not a secret.
        _plan(random.Random(f"{seed}:{index}"), f"pay-{run}-{index:05d}")  # noqa: S311
        for index in range(count)
    ]


def _plan(rng: random.Random, payment_id: str) -> PaymentPlan:
    currency = rng.choices([c for c, _ in CURRENCIES], [w for _, w in CURRENCIES])[0]
    amount_minor = rng.randint(500, 300_000) if currency == "JPY" else rng.randint(500, 250_000)
    merchant_id = f"merchant-{rng.randint(1, MERCHANTS):02d}"
    plan = PaymentPlan(payment_id, currency, amount_minor, merchant_id, "")
    create = {
        "payment_id": payment_id,
        "amount": plan.money(amount_minor),
        "currency": currency,
        "merchant_id": plan.merchant_id,
        "customer_id": f"customer-{rng.randint(1, 5000):04d}",
        "description": "demo order",
        "metadata": {"channel": rng.choice(["web", "app", "pos"])},
    }
    plan.add(CHECKOUT, CREATE, body=create, key=f"{payment_id}:create")
    if rng.random() < 0.12:  # the checkout's client timed out and sent the same request again
        plan.add(CHECKOUT, CREATE, REPLAYED, body=create, key=f"{payment_id}:create")
    if not _assess(rng, plan):
        return plan
    if not _authorise(rng, plan):
        return plan
    _after_authorisation(rng, plan)
    return plan


def _assess(rng: random.Random, plan: PaymentPlan) -> bool:
    score = round(rng.random(), 2)
    decision = "approve" if score < 0.7 else "review" if score < 0.9 else "decline"
    reason = {"approve": "low risk", "review": "new device", "decline": "velocity limit"}[decision]
    assessment = {"decision": decision, "score": f"{score:.2f}", "reason": reason}
    plan.add(FRAUD, "risk-assessments", body=assessment)
    if decision == "review":
        decision = "approve" if rng.random() < 0.7 else "decline"
        review = {"decision": decision, "score": f"{score:.2f}", "reason": "manual review"}
        plan.add(REVIEWER, "risk-assessments", body=review)
    if decision == "decline":
        plan.status = "declined"
        return False
    return True


def _authorise(rng: random.Random, plan: PaymentPlan) -> bool:
    outcome = rng.random()
    key = f"{plan.payment_id}:authorization"
    if outcome < 0.08:
        failure = {"reason": "insufficient funds", "processor": PROCESSOR, "processor_code": "51"}
        plan.add(AUTHORISATION, "failure", body=failure, key=key)
        plan.status = "failed"
        return False
    expires = rng.random() < 0.06
    authorization = {"processor": PROCESSOR, "reference": f"auth-{plan.payment_id}"}
    hold_s = float(HOLD_SHORT_S) if expires else None
    if outcome < 0.16:
        plan.processor_timeouts += 1  # the processor timed out; the retry keeps the same key
    lost = 0.16 <= outcome < 0.24
    plan.add(
        AUTHORISATION, "authorization", body=authorization, key=key, answer_lost=lost, hold_s=hold_s
    )
    if lost:  # the agent never saw the answer: it retries with the same key
        plan.add(
            AUTHORISATION, "authorization", REPLAYED, body=authorization, key=key, hold_s=hold_s
        )
    if expires:
        plan.add(EXPIRY, "expiry", body={}, wait_s=HOLD_SHORT_S + 0.5)
        plan.status = "expired"
        return False
    return True


def _after_authorisation(rng: random.Random, plan: PaymentPlan) -> None:
    if rng.random() < 0.1:
        plan.add(SUPPORT, "void", body={"reason": "customer cancelled"})
        plan.status = "voided"
        return
    amount = plan.amount_minor
    if rng.random() < 0.1:  # a capture agent bug the ledger must refuse
        over = {"amount": plan.money(amount + 1)}
        plan.add(CAPTURE, "captures", "capture_exceeds_authorized", body=over)
    captured = amount
    if rng.random() < 0.4 and amount >= 200:
        first = amount * rng.randint(30, 70) // 100
        plan.add(CAPTURE, "captures", body={"amount": plan.money(first)})
        rest = amount - first
        captured = first + rest * rng.choice([100, 100, 60]) // 100
        final = {"amount": plan.money(captured - first), "final": True}
        plan.add(CAPTURE, "captures", body=final)
    else:
        full = {"amount": plan.money(amount), "final": True}
        plan.add(CAPTURE, "captures", body=full, key=f"{plan.payment_id}:capture")
        if rng.random() < 0.1:
            plan.add(CAPTURE, "captures", REPLAYED, body=full, key=f"{plan.payment_id}:capture")
    plan.status = "captured"
    if rng.random() < 0.2:
        refunded = max(1, captured * rng.randint(10, 100) // 100)
        plan.add(SUPPORT, "refunds", body={"amount": plan.money(refunded), "reason": "returned"})
        plan.status = "refunded"
    if rng.random() < 0.85:
        plan.add(SETTLEMENT, "settlement", body={"reference": "batch-demo"})
        plan.status = "settled"


# ── Running the plans ────────────────────────────────────────────────────────────────────────


@dataclass
class WorkloadReport:
    requests: int = 0
    created: int = 0
    replayed: int = 0
    refused: int = 0  # refused as expected (rule violations)
    processor_timeouts: int = 0
    answers_lost: int = 0
    unexpected: list[str] = field(default_factory=list)
    duration_s: float = 0.0


def run_workload(
    clients: Mapping[str, PayledgerClient],
    plans: Sequence[PaymentPlan],
    *,
    threads: int,
    advance: Callable[[int], None] = lambda _: None,
) -> WorkloadReport:
    """Carry out every plan, each step by its agent's client (``clients`` by agent id):
    ``threads`` threads, as many requests at once, each taking its share of the payments one
    step of each in turn. ``advance(1)`` per request."""
    started = time.monotonic()
    shares = [list(plans[index::threads]) for index in range(threads)]
    reports = [WorkloadReport() for _ in shares]
    workers = [
        threading.Thread(target=_run_share, args=(clients, share, report, advance))
        for share, report in zip(shares, reports, strict=True)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    merged = WorkloadReport(processor_timeouts=sum(plan.processor_timeouts for plan in plans))
    for report in reports:
        merged.requests += report.requests
        merged.created += report.created
        merged.replayed += report.replayed
        merged.refused += report.refused
        merged.answers_lost += report.answers_lost
        merged.unexpected.extend(report.unexpected)
    merged.duration_s = time.monotonic() - started
    return merged


def _run_share(
    clients: Mapping[str, PayledgerClient],
    plans: Sequence[PaymentPlan],
    report: WorkloadReport,
    advance: Callable[[int], None],
) -> None:
    pending = {plan.payment_id: deque(plan.steps) for plan in plans}
    done_at: dict[str, float] = {}
    sent: dict[str, dict[str, Any]] = {}
    while pending:
        progressed = False
        for payment_id in list(pending):
            steps = pending[payment_id]
            if time.monotonic() < done_at.get(payment_id, 0) + steps[0].wait_s:
                continue
            _execute(clients, steps.popleft(), f"order-{payment_id}", report, sent)
            advance(1)
            done_at[payment_id], progressed = time.monotonic(), True
            if not steps:
                del pending[payment_id]
        if not progressed:
            time.sleep(0.05)


def _execute(
    clients: Mapping[str, PayledgerClient],
    step: Step,
    correlation_id: str,
    report: WorkloadReport,
    sent: dict[str, dict[str, Any]],
) -> None:
    agent = step.agent
    body = sent.get(step.key)  # a retry sends exactly what the first attempt sent
    if body is None:
        body = dict(step.body or {})
        if step.hold_s is not None:
            hold_until = datetime.now(UTC) + timedelta(seconds=step.hold_s)
            body["hold_until"] = hold_until.isoformat().replace("+00:00", "Z")
        sent[step.key] = body
    try:
        result = _send(clients[agent.id], step, body, correlation_id)
    except PayledgerError as error:
        outcome, answer = error.code, f"{error.status} {error.message}"
    else:
        outcome = REPLAYED if result.replayed else CREATED
        answer = f"payment {result.payment['status']} at version {result.payment['version']}"
    report.requests += 1
    if step.answer_lost:
        report.answers_lost += 1
    if outcome == CREATED:
        report.created += 1
    elif outcome == REPLAYED:
        report.replayed += 1
    elif outcome == step.expect:
        report.refused += 1
    if outcome != step.expect:
        report.unexpected.append(
            f"{step.route} by {agent.kind}:{agent.id}: expected {step.expect}, "
            f"got {outcome} ({answer[:200]})"
        )


def _send(
    client: PayledgerClient, step: Step, body: Mapping[str, Any], correlation_id: str
) -> CommandResult:
    """``step``'s command through ``client``: the body's fields are the method's arguments."""
    agent = step.agent
    options = CommandOptions(
        idempotency_key=step.key,
        correlation_id=correlation_id,
        actor=f"{agent.kind}:{agent.id}",
    )
    if agent.model:
        options["actor_model"] = agent.model
    if agent.version:
        options["actor_version"] = agent.version
    if step.action == CREATE:
        return client.initiate_payment(**body, **options)
    commands: dict[str, Callable[..., CommandResult]] = {
        "risk-assessments": client.assess_risk,
        "authorization": client.authorize_payment,
        "failure": client.fail_payment,
        "captures": client.capture_payment,
        "void": client.void_payment,
        "refunds": client.refund_payment,
        "settlement": client.settle_payment,
        "expiry": client.expire_payment,
    }
    return commands[step.action](step.payment_id, **body, **options)
