#!/usr/bin/env python3
"""Port and process housekeeping for sandbox hosts (run on the control node by the role).

check:  exit 1 with a clear message when a port that a *new* sandbox host needs is taken (with --ssh, the
        realistic profile's SSH port too), or (--traversable) when the service users of the realistic profile
        could not reach their roots under --home.
ssh-up: the realistic profile's SSH: the client key pair and known_hosts in --home/ssh, and per host (in
        --home/ssh/<host>, outside the host's root: the toolkit's orphan search stops what names the root) a
        host key, an sshd_config and a private sshd (daemon mode, no systemd) started unless it runs; prints
        JSON {"changed": [what changed]}. The login is root's with the client key (--home/ssh/<host>/
        authorized_keys), or with --admin NAME=USER per host only USER's (sandbox_login=sudo: root's refused,
        the key in USER's own ~/.ssh/authorized_keys, which the role writes).
stop:   stop a sandbox host's sshd (realistic profile), its supervisord and every process started from its root
        or run by its users (--user: the service's, the administrator's), then wait until its ports are closed;
        prints JSON
        {"stopped": [pids], "supervisord": bool}.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import pwd
import signal
import socket
import subprocess
import sys
import time

ROLES = ("web", "websocket", "redis", "ssh")
SSHD = "/usr/sbin/sshd"
SSH_KEYGEN = "ssh-keygen"


def port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # As the services bind: a port with only TIME-WAIT connections left (a sandbox just removed) is free.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def untraversable(path: str) -> str | None:
    """The first existing directory from / down to ``path`` that other users cannot traverse (no o+x)."""
    current = "/"
    for part in os.path.abspath(path).split("/")[1:]:
        if not os.path.isdir(current):
            return None
        if not os.stat(current).st_mode & 0o001:
            return current
        current = os.path.join(current, part)
    if os.path.isdir(current) and not os.stat(current).st_mode & 0o001:
        return current
    return None


def check(args: argparse.Namespace) -> int:
    # The home itself is the role's to open (0711); the directories above it must let other users through.
    if args.traversable and (blocked := untraversable(os.path.dirname(os.path.abspath(args.home)))):
        print(
            f"the realistic profile's service users cannot reach {args.home}: {blocked} is not traversable by other "
            f"users (mode {oct(os.stat(blocked).st_mode & 0o777)}); choose a sandbox_home under a directory they can "
            f"enter (for example -e sandbox_home=/srv/notification-sandbox) or `chmod o+x {blocked}`",
            file=sys.stderr,
        )
        return 1
    roles = ROLES if args.ssh else ROLES[:3]
    last = args.base_port + 10 * (args.size - 1) + len(roles) - 1
    if args.base_port < 1024 or last > 65535:
        print(
            f"sandbox_base_port {args.base_port} with sandbox_size {args.size} needs ports up to {last}; "
            "choose a base port between 1024 and 65535 - 10 * size",
            file=sys.stderr,
        )
        return 1
    busy = []
    for index in range(1, args.size + 1):
        name = f"{args.prefix}-{index:02d}"
        if os.path.isdir(os.path.join(args.home, name)):
            continue  # an existing host holds its own ports
        for offset, role in enumerate(roles):
            port = args.base_port + 10 * (index - 1) + offset
            if not port_free(port):
                busy.append(f"{port} ({role} of {name})")
    if busy:
        print(
            "ports needed by new sandbox hosts are in use by other processes: "
            + ", ".join(busy)
            + "; stop those processes or choose another range with -e sandbox_base_port=N",
            file=sys.stderr,
        )
        return 1
    return 0


SSHD_CONFIG = """\
# Private sshd of sandbox host {name} (playbooks/sandbox_up.yml, profile realistic): key-only login as {who}
# on 127.0.0.1:{port}, no PAM, no systemd. Written by roles/notification_sandbox/files/sandbox_ports.py.
Port {port}
ListenAddress 127.0.0.1
HostKey {conf}/ssh_host_ed25519_key
PidFile {conf}/sshd.pid
AuthorizedKeysFile {authorized_keys}
PermitRootLogin {permit_root}
AllowUsers {allow}
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
UseDNS no
PrintMotd no
# The sandbox's homes may sit under world-writable temporary directories, which StrictModes refuses.
StrictModes no
# One control node opens a connection per fork: room for a whole run at once.
MaxStartups 100:30:200
MaxSessions 100
Subsystem sftp internal-sftp
# The machine's tools (supervisor, installed as a system package would be) on the PATH of every session.
SetEnv PATH={path}
"""


def write_if_changed(path: str, content: str, mode: int) -> bool:
    try:
        with open(path) as handle:
            if handle.read() == content and (os.stat(path).st_mode & 0o777) == mode:
                return False
    except FileNotFoundError:
        pass
    tmp = f"{path}.tmp"
    with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode), "w") as handle:
        handle.write(content)
    os.chmod(tmp, mode)
    os.replace(tmp, path)
    return True


def keygen(path: str, comment: str) -> bool:
    if os.path.exists(path):
        return False
    subprocess.run([SSH_KEYGEN, "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", path], check=True)
    return True


def pid_of(pidfile: str) -> int:
    try:
        with open(pidfile) as handle:
            pid = int(handle.read().strip())
    except (OSError, ValueError):
        return 0
    return pid if pid > 0 and alive(pid) else 0


def ssh_up(args: argparse.Namespace) -> int:
    changed: list[str] = []
    ssh_dir = os.path.join(args.home, "ssh")
    os.makedirs(ssh_dir, mode=0o700, exist_ok=True)
    identity = os.path.join(ssh_dir, "id_ed25519")
    if keygen(identity, "notification-emergency sandbox control node"):
        changed.append(identity)
    with open(f"{identity}.pub") as handle:
        client_key = handle.read()
    if not os.path.isdir("/run/sshd"):  # sshd's privilege separation directory (a package's tmpfiles.d makes it)
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
        changed.append("/run/sshd")
    known_hosts = []
    admins = dict(spec.split("=", 1) for spec in args.admin)
    for spec in args.host:
        name, rest = spec.split("=", 1)
        root, port = rest.rsplit(":", 1)
        conf = os.path.join(ssh_dir, name)
        os.makedirs(conf, mode=0o700, exist_ok=True)
        os.makedirs(root, mode=0o755, exist_ok=True)
        marker = os.path.join(root, ".notification-sandbox")
        if not os.path.exists(marker):  # as the role's main writes it: sandbox_down removes a half-made host too
            mark = {"sandbox": True, "host": name, "created_by": "playbooks/sandbox_up.yml"}
            write_if_changed(marker, json.dumps(mark, indent=4, sort_keys=True) + "\n", 0o644)
        host_key = os.path.join(conf, "ssh_host_ed25519_key")
        if keygen(host_key, name):
            changed.append(host_key)
        with open(f"{host_key}.pub") as handle:
            known_hosts.append(f"[127.0.0.1]:{port} {' '.join(handle.read().split()[:2])}\n")
        config = os.path.join(conf, "sshd_config")
        admin = admins.get(name)
        login = (
            # sandbox_login=sudo: only the administrator, with the key in its own home; root's login refused.
            {"who": f"{admin} (root through sudo)", "authorized_keys": ".ssh/authorized_keys", "permit_root": "no"}
            if admin
            else {"who": "root", "authorized_keys": f"{conf}/authorized_keys", "permit_root": "prohibit-password"}
        )
        content = SSHD_CONFIG.format(name=name, port=port, conf=conf, path=args.path, allow=admin or "root", **login)
        if write_if_changed(config, content, 0o644):
            changed.append(config)
        if not admin and write_if_changed(os.path.join(conf, "authorized_keys"), client_key, 0o600):
            changed.append(f"{conf}/authorized_keys")
        pidfile = os.path.join(conf, "sshd.pid")
        running = pid_of(pidfile)
        if running and config in changed:
            os.kill(running, signal.SIGHUP)  # sshd re-reads its configuration (it re-executes itself)
        if running:
            continue
        done = subprocess.run(
            [SSHD, "-f", config, "-E", os.path.join(conf, "sshd.log")], capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            print(f"sshd of {name} did not start (rc={done.returncode}): {done.stderr.strip()}", file=sys.stderr)
            return 1
        deadline = time.monotonic() + 10
        while not port_open(int(port)) and time.monotonic() < deadline:
            time.sleep(0.05)
        if not port_open(int(port)):
            print(f"sshd of {name} does not listen on 127.0.0.1:{port}; see {conf}/sshd.log", file=sys.stderr)
            return 1
        changed.append(f"sshd of {name}")
    if write_if_changed(os.path.join(ssh_dir, "known_hosts"), "".join(known_hosts), 0o644):
        changed.append(os.path.join(ssh_dir, "known_hosts"))
    print(json.dumps({"changed": changed}))
    return 0


def children_of(parent: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == parent:
            found.append(int(entry))
    return found


def processes_of(user: str) -> list[int]:
    try:
        uid = pwd.getpwnam(user).pw_uid
    except KeyError:
        return []
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.stat(f"/proc/{entry}").st_uid == uid:
                    found.append(int(entry))
            except OSError:
                continue
    return found


def processes_under(root: str) -> list[int]:
    prefix = root.rstrip("/") + "/"
    me = {os.getpid(), os.getppid()}
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) in me:
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                argv = handle.read().decode(errors="replace").split("\0")
        except OSError:
            continue
        if any(arg.startswith(prefix) for arg in argv):
            found.append(int(entry))
    return found


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stop(args: argparse.Namespace) -> int:
    conf = os.path.join(args.root, "etc", "supervisord.conf")
    pidfile = os.path.join(args.root, "run", "supervisord.pid")
    ctl = os.path.join(os.path.dirname(sys.executable), "supervisorctl")
    stopped: list[int] = []
    supervisord = False
    # The realistic profile's sshd first: its listener and the sessions it forked (a control node's persistent
    # connections), so that nothing logs in while the host goes.
    sshd = pid_of(os.path.join(args.sshd_dir, "sshd.pid")) if args.sshd_dir else 0
    if sshd:
        for pid in [sshd, *children_of(sshd)]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            stopped.append(pid)
    if os.path.exists(pidfile) and os.path.exists(conf):
        try:
            with open(pidfile) as handle:
                pid = int(handle.read().strip())
        except (OSError, ValueError):
            pid = 0
        if pid and alive(pid):
            supervisord = True
            subprocess.run([ctl, "-c", conf, "shutdown"], capture_output=True, timeout=60, check=False)
            deadline = time.monotonic() + 30
            while alive(pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            stopped.append(pid)
    # Anything left (orphans of a killed supervisord, for example) is stopped by its command line.
    of_users = {pid for user in args.user for pid in processes_of(user)}
    leftovers = sorted(set(processes_under(args.root)) | of_users)
    for sig, wait in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        for pid in leftovers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + wait
        while any(alive(pid) for pid in leftovers) and time.monotonic() < deadline:
            time.sleep(0.1)
        stopped.extend(pid for pid in leftovers if pid not in stopped)
        leftovers = [pid for pid in leftovers if alive(pid)]
        if not leftovers:
            break
    ports = [int(p) for p in args.ports.split(",") if p]
    deadline = time.monotonic() + 15
    while (still := [p for p in ports if port_open(p)]) and time.monotonic() < deadline:
        time.sleep(0.1)
    if still:
        print(
            f"ports {', '.join(map(str, still))} of {args.root} are still open after stopping its processes; "
            "find the process with `ss -ltnp` and stop it",
            file=sys.stderr,
        )
        return 1
    print(json.dumps({"stopped": sorted(set(stopped)), "supervisord": supervisord}))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p_check = sub.add_parser("check")
    p_check.add_argument("--home", required=True)
    p_check.add_argument("--prefix", required=True)
    p_check.add_argument("--base-port", type=int, required=True)
    p_check.add_argument("--size", type=int, required=True)
    p_check.add_argument("--ssh", action="store_true", help="new hosts need an SSH port too (realistic profile)")
    p_check.add_argument("--traversable", action="store_true", help="other users must be able to reach --home")
    p_ssh = sub.add_parser("ssh-up")
    p_ssh.add_argument("--home", required=True)
    p_ssh.add_argument("--path", default="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    p_ssh.add_argument("--host", action="append", default=[], help="NAME=ROOT:SSH_PORT, once per host")
    p_ssh.add_argument(
        "--admin", action="append", default=[], help="NAME=USER: host NAME's only login is USER's (sandbox_login=sudo)"
    )
    p_stop = sub.add_parser("stop")
    p_stop.add_argument("--root", required=True)
    p_stop.add_argument("--ports", default="")
    p_stop.add_argument(
        "--user", action="append", default=[], help="a user of the host (realistic profile: the service's, the admin's)"
    )
    p_stop.add_argument("--sshd-dir", default="", help="the host's sshd directory (realistic profile)")
    args = parser.parse_args()
    return {"check": check, "ssh-up": ssh_up, "stop": stop}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
