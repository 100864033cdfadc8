"""RabbitMQ as the production broker (issue 18): the task queue is a quorum queue, and a poison
message — one that keeps coming back because it kills or stalls every worker that takes it —
goes to the dead-letter queue after RABBITMQ_DELIVERY_LIMIT deliveries instead of going round
forever. On the RabbitMQ of the machine (skipped with the reason when none answers); the
end-to-end and chaos tests on RabbitMQ (test_run, test_install, test_chaos,
test_subscriptions) run on these queues too."""

from __future__ import annotations

import time
from typing import Any

import kombu
import redis

from config import Settings
from tasks.app import dead_letter_queue, rabbitmq_queue
from tests.conftest import amqp_url_or_skip, wait_until
from tests.emulators.upstreams import Fault
from tests.stacks import running_stack


def test_a_poison_message_is_dead_lettered_after_the_delivery_limit() -> None:
    amqp = amqp_url_or_skip()
    queue_name = f"poison-{time.time_ns()}"
    settings = Settings(CELERY_BROKER_URL=amqp, CELERY_QUEUE=queue_name, RABBITMQ_DELIVERY_LIMIT=3)
    # With publisher confirms (as the app publishes): the message is in the queue on return.
    with kombu.Connection(amqp, connect_timeout=5, transport_options={"confirm_publish": True}) as connection:
        channel = connection.channel()
        queue, dead = rabbitmq_queue(settings)(channel), dead_letter_queue(settings)(channel)
        try:
            dead.declare()
            queue.declare()
            connection.Producer(channel).publish(
                {"task": "lookup", "poison": True}, exchange=queue.exchange, routing_key=queue.routing_key
            )
            deliveries = 0

            def taken_and_returned() -> Any:
                """A worker takes it and dies holding it (acks_late: it comes back); the
                dead-letter queue's message once it has one."""
                nonlocal deliveries
                if (message := queue.get(no_ack=False)) is not None:
                    deliveries += 1
                    message.requeue()
                    assert deliveries <= 10, "the message keeps coming back: no delivery limit"
                return dead.get(no_ack=True)

            poisoned = wait_until(taken_and_returned, timeout=10)
            assert poisoned.payload == {"task": "lookup", "poison": True}
            assert deliveries == 1 + settings.RABBITMQ_DELIVERY_LIMIT  # the first, then the limit
        finally:
            queue.delete()
            dead.delete()
            queue.exchange.delete()
            dead.exchange.delete()


def test_the_queue_is_a_quorum_queue() -> None:
    """RabbitMQ refuses to declare a queue again with other arguments: declaring ours as a
    classic queue after it exists shows that it is not one."""
    amqp = amqp_url_or_skip()
    settings = Settings(CELERY_BROKER_URL=amqp, CELERY_QUEUE=f"quorum-{time.time_ns()}")
    with kombu.Connection(amqp, connect_timeout=5) as connection:
        queue = rabbitmq_queue(settings)(connection.channel())
        queue.declare()
        try:
            classic = kombu.Queue(queue.name, queue.exchange, queue.routing_key, durable=True)
            try:
                classic(connection.channel()).declare()
                redeclared = True
            except connection.channel_errors:
                redeclared = False
            assert not redeclared, "a classic queue of that name could be declared"
        finally:
            queue(connection.channel()).delete()
            queue.exchange(connection.channel()).delete()


def test_retries_with_a_countdown_run_on_the_quorum_queue(
    telegram: Any, make_tg_chat: Any, redis_server: Any, upstreams: Any
) -> None:
    """Countdown retries on a quorum queue go through RabbitMQ's native delayed delivery (a
    quorum queue has no per-message TTL for Celery's own ETA): an upstream failing once is
    retried, and the user answered once."""
    amqp = amqp_url_or_skip()
    redis.Redis.from_url(f"{redis_server.url}/12").flushdb()
    with running_stack(f"{redis_server.url}/12", amqp, telegram, LOOKUP_RETRY_BACKOFF="1"):
        upstreams.script("fx", Fault(status=503))
        chat = make_tg_chat()
        chat.send("/fx 12 EUR USD")
        assert chat.reply(timeout=30).startswith("12.00 EUR = ")
        assert upstreams.count("fx") == 2
        chat.assert_no_reply(within=0.2)
