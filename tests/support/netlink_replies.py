"""A stand-in for a ctnetlink socket: it answers each recv with the next of the buffers given
(what the kernel would send), and keeps what was sent."""


class Replies:
    def __init__(self, *buffers):
        self.buffers = list(buffers)
        self.sent = []

    def send(self, data):
        self.sent.append(data)

    def recv(self, size):
        return self.buffers.pop(0)
