"""``asyncbench synth``, ``deploy`` and ``destroy``: the system under test on AWS.

``synth`` runs the CDK app in-process (no network, no CDK CLI, no account). ``deploy`` and
``destroy`` run the pinned CDK CLI; ``deploy`` then reads the stacks' outputs and writes the
endpoints file that ``asyncbench run --target aws`` drives. Heavy imports (the CDK, boto3) happen
inside the handlers so that other commands start fast.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from asyncbench.errors import AsyncbenchError, ConfigError, StackNotDeployedError
from stack.config import StackConfig, load_config

__all__ = [
    "LEFT_BEHIND",
    "NO_CREDENTIALS_MESSAGE",
    "OPEN_ENDPOINTS_WARNING",
    "aws_session",
    "register",
]

NO_CREDENTIALS_MESSAGE = (
    "no AWS credentials found; configure a profile or AWS_* variables (see README, AWS path)"
)

DEFAULT_OUT = Path("cdk.out")

OPEN_ENDPOINTS_WARNING = (
    "warning: the APIs accept requests from anyone who learns their URLs (no authorizer, on "
    "purpose), and every request costs money; pass --allow-cidr CIDR to accept only your load "
    "generators"
)

# What `destroy` does not remove, on purpose: account-level, shared by every REST API there.
LEFT_BEHIND = (
    "left in place (account-level, shared by every API Gateway REST API of the account in "
    "{region}): the IAM role {role} and API Gateway's account setting cloudWatchRoleArn that "
    "points at it; delete the role yourself if no other API logs to CloudWatch"
)


def _config(args: argparse.Namespace) -> StackConfig:
    overrides = list(args.overrides)
    cidrs = getattr(args, "allow_cidrs", None)
    if cidrs:
        overrides.append(f"allowed_cidrs={json.dumps(cidrs)}")
    return load_config(args.config, overrides)


def aws_session(region: str | None, profile: str | None) -> Any:
    """A boto3 session that has credentials and a region, or one clear error line."""
    import boto3
    from botocore.exceptions import ProfileNotFound

    try:
        session = boto3.Session(profile_name=profile, region_name=region)
    except ProfileNotFound:
        raise ConfigError(
            f"AWS profile {profile!r} not found; check ~/.aws/config or drop --profile"
        ) from None
    if session.get_credentials() is None:
        raise StackNotDeployedError(NO_CREDENTIALS_MESSAGE)
    if not session.region_name:
        raise ConfigError("no AWS region; pass --region or set AWS_REGION (or a profile region)")
    return session


def _synth(args: argparse.Namespace) -> int:
    config = _config(args)
    from stack.app import synthesize

    try:
        built = synthesize(config, args.out)
    except RuntimeError as error:
        # cdk-nag v3 fails synthesis on an unacknowledged finding; the report says which.
        if "ValidationFailed" not in str(error):
            raise
        raise AsyncbenchError(
            f"cdk-nag found unacknowledged AwsSolutions findings; see {args.out}/"
            "validation-report.json"
        ) from None
    for variant, path in built.template_paths().items():
        print(f"{variant}: {path}")
    print(Path(args.out))
    return 0


def _deploy(args: argparse.Namespace) -> int:
    config = _config(args)
    session = aws_session(args.region, args.profile)
    from stack.cdk_cli import run_cdk
    from stack.endpoints import write_endpoints
    from stack.outputs import fetch_endpoints, stack_names
    from stack.preflight import preflight

    names = stack_names(config)
    # Refuse what CloudFormation would refuse minutes later, in one line with the fix.
    preflight(session, config, names, bootstrap=args.bootstrap)
    if not config.allowed_cidrs:
        print(OPEN_ENDPOINTS_WARNING, file=sys.stderr)
    common: dict[str, Any] = {
        "config": config,
        "region": session.region_name,
        "profile": args.profile,
        "outdir": args.out,
    }
    if args.bootstrap:
        # Idempotent; the Lambda code asset needs the CDK toolkit stack's bucket.
        run_cdk(["bootstrap"], **common)
    run_cdk(["deploy", *names.values(), "--require-approval", "never"], **common)
    endpoints = fetch_endpoints(session.client("cloudformation"), names)
    # The config the stacks were deployed with travels to every run's manifest.
    endpoints.extra["stack_config"] = config.to_dict()
    print(write_endpoints(endpoints, args.endpoints))
    return 0


def _destroy(args: argparse.Namespace) -> int:
    config = _config(args)
    session = aws_session(args.region, args.profile)
    from stack.cdk_cli import run_cdk
    from stack.endpoints import default_endpoints_path
    from stack.outputs import stack_names

    role = _account_role(session, stack_names(config)["direct"])
    run_cdk(
        ["destroy", *stack_names(config).values(), "--force"],
        config=config,
        region=session.region_name,
        profile=args.profile,
        outdir=args.out,
    )
    endpoints_path: Path = args.endpoints or default_endpoints_path("aws")
    # A stale endpoints file would send the next run to a deleted API.
    endpoints_path.unlink(missing_ok=True)
    print(f"destroyed {', '.join(stack_names(config).values())}")
    print(LEFT_BEHIND.format(region=session.region_name, role=role))
    return 0


def _account_role(session: Any, direct_stack: str) -> str:
    """The retained account-level role's ARN from the direct stack's outputs (before destroy)."""
    from botocore.exceptions import BotoCoreError, ClientError

    from stack.outputs import OUTPUT_KEYS

    try:
        stacks = session.client("cloudformation").describe_stacks(StackName=direct_stack)
        outputs = stacks["Stacks"][0].get("Outputs", [])
    except (BotoCoreError, ClientError):
        outputs = []
    for output in outputs:
        if output["OutputKey"] == OUTPUT_KEYS["account_role_arn"]:
            return str(output["OutputValue"])
    return "that the direct stack created (if it was ever deployed)"


def _add_config_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="stack config (JSON or TOML; see stack/config.py for the keys); default: built-in",
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one config key, e.g. --set batch_size=50 (repeatable)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        metavar="DIR",
        help="cloud assembly folder (templates, assets); default: cdk.out",
    )


def _add_aws_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--region", help="AWS region (default: the profile's or AWS_REGION)")
    parser.add_argument("--profile", help="AWS named profile (default: the default chain)")
    parser.add_argument(
        "--endpoints",
        type=Path,
        metavar="FILE",
        help="endpoints file (default: .asyncbench/endpoints-aws.json)",
    )


def register(subparsers: argparse._SubParsersAction) -> None:
    synth = subparsers.add_parser(
        "synth",
        help="CloudFormation templates of both variants, offline",
        description=(
            "Synthesize both variants' stacks in-process (no AWS account, no network) and run "
            "cdk-nag's AwsSolutions checks. Prints each template's path, then the folder."
        ),
    )
    _add_config_options(synth)
    synth.set_defaults(handler=_synth)

    deploy = subparsers.add_parser(
        "deploy",
        help="deploy both variants to AWS and write the endpoints file",
        description=(
            "Deploy both variants with the pinned CDK CLI (node_modules; `npm ci` installs it), "
            "telemetry and notices off, no approval prompt; then read the stacks' outputs and "
            "write the endpoints file (its path is the last line). Needs AWS credentials."
        ),
    )
    _add_config_options(deploy)
    _add_aws_options(deploy)
    deploy.add_argument(
        "--no-bootstrap",
        dest="bootstrap",
        action="store_false",
        help="skip `cdk bootstrap` (the account/region is known to be bootstrapped)",
    )
    deploy.add_argument(
        "--allow-cidr",
        dest="allow_cidrs",
        action="append",
        default=[],
        metavar="CIDR",
        help="accept API requests only from this address block, e.g. your load generators' "
        "203.0.113.7/32 (repeatable; a resource policy). Without it the APIs are open",
    )
    deploy.set_defaults(handler=_deploy)

    destroy = subparsers.add_parser(
        "destroy",
        help="remove both variants from AWS",
        description=(
            "Destroy both variants' stacks (tables, queue and logs included) with the pinned CDK "
            "CLI and delete the AWS endpoints file. Needs AWS credentials."
        ),
    )
    _add_config_options(destroy)
    _add_aws_options(destroy)
    destroy.set_defaults(handler=_destroy)
