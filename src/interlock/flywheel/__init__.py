"""The flywheel: capture of requests and answers, feedback on them, datasets built from them, and evals.

`capture.Capture` is an output-phase observer on the request path (off by default, opt-in per scope);
`examples` turns a capture into a training example; `datasets` builds, splits, versions, exports and
imports them; `checks`, `stats` and `evals` run a dataset's eval split through the gateway's own API.
Nothing here serves HTTP.
"""
