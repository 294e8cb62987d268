"""Entry point: `python train.py -m model=simplecnn,resnetsmall sparsity=0.2,0.5,0.8`."""

import signal
import sys

try:
    from prunelab.errors import JOB_BEGUN, sigterm_as_interrupt, stop_status, stopped
    from prunelab.sweep_dir import release_claimed

    with sigterm_as_interrupt():  # `kill`, `timeout` during the checks: one line too
        from prunelab.cli import check_argv, interrupted_launch
        from prunelab.flags import print_command
        from prunelab.stopping import jobs_said, sigterm_in_launcher

        # One clear line for a bad sparsity, model or dataset before any job starts (Hydra
        # would say it in a traceback, or only when the job reaches it); Hydra's flags (-m) may
        # stand anywhere.
        sys.argv[1:] = check_argv(sys.argv[1:], launch=True)

        import hydra
        from omegaconf import DictConfig
except (KeyboardInterrupt, Exception) as err:  # Ctrl-C or SIGTERM: no job has started
    # One landing inside an import (torch's) can surface as another error of the half-imported
    # module: still the stop's.
    if not isinstance(err, KeyboardInterrupt) and not ("stopped" in globals() and stopped()):
        raise
    if "release_claimed" in globals():  # else it came before anything was claimed
        release_claimed()
    what, status = stop_status() if "stop_status" in globals() else ("interrupted", 130)
    print(f"prunelab: {what} before any job started", file=sys.stderr)
    raise SystemExit(status) from None


@hydra.main(config_path="conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig):
    from prunelab.pipeline import main as run_job

    return run_job(cfg)


if __name__ == "__main__":
    command = None
    try:
        command = print_command(sys.argv[1:])  # --help, --cfg, ...: prints, runs no job
        with sigterm_in_launcher():
            main()
    except KeyboardInterrupt:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C: no traceback instead
        # Ctrl-C (or SIGTERM) outside a job of this process (a job says it and exits itself):
        # under joblib the running jobs have said it on this terminal and marked themselves
        # FAILED; under submitit they say it into their log files; or no job was running.
        line = interrupted_launch(sys.argv[1:], jobs_said(), JOB_BEGUN.is_set())
        if line is not None:
            print(line, file=sys.stderr)
        raise SystemExit(stop_status()[1]) from None
    except Exception as err:
        if command is None:  # a job's errors are its own (it has logged them)
            raise
        # An error of Hydra's in composing what the flag prints is the command line's: one line.
        first = next((s for s in str(err).splitlines() if s.strip()), type(err).__name__)
        print(f"prunelab: error: {command}: {first.strip()}", file=sys.stderr)
        raise SystemExit(2) from None
    finally:
        release_claimed()  # a launch that failed or stopped before any job leaves no folder
