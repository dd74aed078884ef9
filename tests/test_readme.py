"""README's two newcomer commands and .ci/run must stay the same commands."""

from __future__ import annotations

import re


def _readme_commands(repo_root):
    text = (repo_root / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)\n```", text, flags=re.S)
    return [b.strip() for b in blocks[:2]]


def test_readme_starts_with_install_and_test_commands(repo_root):
    install, test = _readme_commands(repo_root)
    assert "pip install torch==2.13.0" in install
    assert 'pip install -e ".[dev]"' in install
    assert "python -m monai.bundle run" in install
    assert "pytest" in test
    # the install command comes before any other section of the README
    text = (repo_root / "README.md").read_text()
    assert text.index(install) < text.index("\n## ")


def test_ci_runs_exactly_the_readme_commands(repo_root):
    install, test = _readme_commands(repo_root)
    ci_lines = [line.strip() for line in (repo_root / ".ci" / "run").read_text().splitlines()]
    assert install in ci_lines, ".ci/run must run README's install command verbatim"
    assert test in ci_lines, ".ci/run must run README's test command verbatim"
    assert ci_lines.index(install) < ci_lines.index(test)


def test_readme_bundle_exists(repo_root):
    install, _ = _readme_commands(repo_root)
    for config in re.findall(r"--config_file (\S+)", install):
        assert (repo_root / config).is_file(), config
