"""s2s: talk to a speech-to-speech service from the command line.

  s2s ask question.wav -o reply.wav     ask by voice; live progress, then transcript and reply
  s2s ask q2.wav --conversation ID      go on with a conversation (--new, the default, starts one)
  s2s transcribe recording.wav          print what was said
  s2s say "Hello there." -o hello.wav   speak a text
  s2s jobs status|wait|audio ID         a job's record, its end, its reply audio
  s2s voices                            the voices a job may ask for

The service is S2S_URL (default http://127.0.0.1:8000), with the API key S2S_API_KEY when it
has keys; --url and --api-key override them. Progress goes to stderr (live on a terminal, plain
lines elsewhere); results go to stdout.

exit codes:
  0  done
  1  the job failed (its stage and reason on stderr)
  2  usage: bad arguments, an input that cannot be read, an output that cannot be written
  3  the service is unreachable or not ready (connection error, no answer in time, 503)
  4  the service refused the request (any other 4xx; its message on stderr)
  130 interrupted (a job already sent goes on)
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from . import __version__, commands
from .client import Client
from .errors import DONE, INTERRUPTED, USAGE, CliError
from .progress import say

DEFAULT_URL = "http://127.0.0.1:8000"
REPLY_FORMATS = ("wav", "flac", "ogg", "opus", "mp3")


def build_parser() -> argparse.ArgumentParser:
    summary, _, rest = (__doc__ or "").partition("\n\n")
    parser = argparse.ArgumentParser(
        prog="s2s",
        description=summary,
        epilog=rest,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    url_help, key_help = f"the service (S2S_URL; {DEFAULT_URL})", "its API key (S2S_API_KEY)"
    parser.add_argument("--url", help=url_help)
    parser.add_argument("--api-key", help=key_help)
    # The same options after the command too (`s2s ask … --url U`); SUPPRESS keeps a
    # subcommand's unset copy from hiding one given before the command.
    service = argparse.ArgumentParser(add_help=False)
    group = service.add_argument_group("service")
    group.add_argument("--url", default=argparse.SUPPRESS, help=url_help)
    group.add_argument("--api-key", default=argparse.SUPPRESS, help=key_help)
    commands_ = parser.add_subparsers(dest="command", metavar="COMMAND")

    ask = commands_.add_parser(
        "ask", parents=[service], help="ask by voice: send a recording, follow the job, get the reply"
    )
    ask.add_argument("recording", nargs="?", type=Path, help="the question, a recording (WAV, FLAC, MP3, …)")
    ask.add_argument("--audio", dest="audio_option", type=Path, metavar="FILE", help="the same, as an option")
    ask.add_argument("-o", "--output", type=Path, metavar="FILE", help="save the spoken reply here (WAV)")
    ask.add_argument("--voice", metavar="NAME", help="the voice of the reply (see `s2s voices`)")
    turn = ask.add_mutually_exclusive_group()
    turn.add_argument("--conversation", metavar="ID", help="go on with this conversation (its id)")
    turn.add_argument("--new", action="store_true", help="start a new conversation (the default)")
    ask.add_argument("--json", action="store_true", help="print the job's final record as JSON, only that")
    ask.add_argument("--play", action="store_true", help="play the reply on the default audio device")

    transcribe = commands_.add_parser("transcribe", parents=[service], help="print what a recording says")
    transcribe.add_argument("recording", type=Path)

    say_ = commands_.add_parser("say", parents=[service], help="speak a text into a WAV file")
    say_.add_argument("text")
    say_.add_argument("-o", "--output", type=Path, metavar="FILE", help="the WAV file to write")
    say_.add_argument("--voice", metavar="NAME", help="a voice of `s2s voices`; else the default one")
    say_.add_argument("--play", action="store_true", help="play it on the default audio device")

    jobs = commands_.add_parser("jobs", parents=[service], help="a job by its id")
    actions = jobs.add_subparsers(dest="action", metavar="ACTION", required=True)
    status = actions.add_parser("status", parents=[service], help="print its record (JSON)")
    wait = actions.add_parser("wait", parents=[service], help="wait until it ends, print its record (JSON)")
    audio = actions.add_parser("audio", parents=[service], help="save its spoken reply")
    for action in (status, wait, audio):
        action.add_argument("id")
    audio.add_argument("-o", "--output", type=Path, metavar="FILE", required=True)
    audio.add_argument("--format", choices=REPLY_FORMATS, default="wav")

    voices = commands_.add_parser("voices", parents=[service], help="list the voices a job may ask for")
    voices.add_argument("--json", action="store_true", help="print the answer as JSON")
    ask.set_defaults(subparser=ask)
    return parser


def run(args: argparse.Namespace, client: Client) -> None:
    if args.command == "ask":
        commands.ask(
            client,
            commands.AskOptions(
                recording=args.audio_option or args.recording,
                output=args.output,
                voice=args.voice,
                conversation=args.conversation,
                as_json=args.json,
                play=args.play,
            ),
        )
    elif args.command == "transcribe":
        commands.transcribe(client, args.recording)
    elif args.command == "say":
        commands.speak(client, args.text, args.voice, args.output, args.play)
    elif args.command == "jobs" and args.action == "status":
        commands.job_status(client, args.id)
    elif args.command == "jobs" and args.action == "wait":
        commands.job_wait(client, args.id)
    elif args.command == "jobs":
        commands.job_audio(client, args.id, args.output, args.format)
    else:
        commands.voices(client, args.json)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_usage(sys.stderr)
        say("s2s: error: name a command (s2s --help lists them)")
        return USAGE
    if args.command == "ask" and (args.recording is None) == (args.audio_option is None):
        args.subparser.error("ask takes one recording: FILE or --audio FILE")
    url = args.url or os.environ.get("S2S_URL") or DEFAULT_URL
    if not url.startswith(("http://", "https://")):
        parser.error(f"the service URL must start with http:// or https:// (got {url!r})")
    api_key = args.api_key or os.environ.get("S2S_API_KEY") or None
    try:
        with Client(url, api_key) as client:
            run(args, client)
    except CliError as exc:
        say(f"s2s: {exc.message}")
        return exc.code
    except KeyboardInterrupt:
        say("s2s: interrupted")
        return INTERRUPTED
    except BrokenPipeError:
        # The reader of stdout stopped (`s2s voices | head -1`): nothing left to tell it.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return DONE
    return DONE


if __name__ == "__main__":
    sys.exit(main())
