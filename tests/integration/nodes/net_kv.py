"""Maelstrom node that serves read/write/cas by forwarding them to a KV
service (``lin-kv`` unless the request names another in ``service``) and
relaying the service's answer (errors included) to the client."""

from net_maelstrom import Node

node = Node()


def forward(msg):
    body = {k: v for k, v in msg["body"].items() if k not in ("msg_id", "service")}
    service = msg["body"].get("service", "lin-kv")

    def relay(resp):
        answer = {k: v for k, v in resp["body"].items() if k not in ("msg_id", "in_reply_to")}
        node.reply(msg, answer)

    node.rpc(service, body, relay)


for kind in ("read", "write", "cas", "ts"):
    node.on(kind)(forward)

node.run()
