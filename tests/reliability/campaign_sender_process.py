"""A campaign sender process for the crash test: runs a send job and stops dead after the
vendor accepted its second batch but before the rows are marked (prints `HOLDING` and
waits there), so the test can SIGKILL it:

    DATABASE_URL=… DJANGO_SETTINGS_MODULE=marketerapi.settings_test \
        python -m tests.reliability.campaign_sender_process <job id>
"""

from __future__ import annotations

import sys
import time
from typing import Any


def main(job_id: int) -> None:
    import django

    django.setup()
    from campaigns.sending import runner

    original = runner._send_with_retries
    calls = []

    def send_then_hold(*args: Any, **kwargs: Any) -> Any:
        result = original(*args, **kwargs)
        calls.append(1)
        if len(calls) == 2:
            print("HOLDING after-send", flush=True)
            time.sleep(600)
            raise SystemExit("not killed in time")
        return result

    runner._send_with_retries = send_then_hold
    runner.send_job_run(job_id)
    print("DONE without reaching the hook", flush=True)


if __name__ == "__main__":
    main(int(sys.argv[1]))
