"""Tools that talk to the cluster from outside: the WebSocket clients, the end of speech and
first audible audio measurements, WER and the Jaeger waterfall. No process imports them
(tests, benchmarks and load tests do); the images do not carry them."""
