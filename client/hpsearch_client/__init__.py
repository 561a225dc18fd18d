"""hpsearch-client: tune your own training code with an hpsearch server.

HTTP only, standard library only, so it never touches your torch::

    from hpsearch_client import Study

    study = Study("http://127.0.0.1:8000", 3)   # or $HPS_URL; the key from $HPS_API_KEY
    for trial in study.trials():
        with trial:                               # pruned: ends quietly; an error: fails it
            for epoch in range(20):
                ...                               # train with trial.params["lr"], ...
                trial.report(epoch, train_loss=tl, val_auc=auc)   # raises TrialPruned
            trial.complete(val_auc=auc)

``hpsearch_client.agent`` (the ``hpsearch-agent`` command) runs a command once per trial
instead, for code that should not change.
"""

from __future__ import annotations

from ._errors import ClientError, HpsError, ServerError, TrialLost, TrialPruned
from ._study import Study, Trial

__all__ = [
    "ClientError",
    "HpsError",
    "ServerError",
    "Study",
    "Trial",
    "TrialLost",
    "TrialPruned",
]
__version__ = "0.1.0"
