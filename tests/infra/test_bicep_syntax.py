"""Every Bicep file parses, with the full grammar and with checkov's parser.

No Bicep compiler installs from the registries this project may use, so two
parsers stand in: tree-sitter-bicep knows the whole grammar, and pycep is the
parser checkov uses. checkov silently skips a file pycep cannot read (and exits
0), so a pycep failure must fail here.
"""

import re

import pytest
import tree_sitter_bicep
from tree_sitter import Language, Node, Parser

import infra_model

BICEP_FILES = infra_model.bicep_files()
FILE_IDS = [str(path.relative_to(infra_model.REPO)) for path in BICEP_FILES]


def test_infra_has_bicep_files():
    assert infra_model.MAIN_BICEP in BICEP_FILES


def _syntax_problems(node: Node) -> list[str]:
    problems = []
    stack = [node]
    while stack:
        current = stack.pop()
        if current.type == "ERROR" or current.is_missing:
            row, column = current.start_point
            kind = f"missing {current.type}" if current.is_missing else "syntax error"
            problems.append(f"line {row + 1}, column {column + 1}: {kind}")
        stack.extend(current.children)
    return sorted(problems)


@pytest.mark.parametrize("path", BICEP_FILES, ids=FILE_IDS)
def test_tree_sitter_finds_no_error_or_missing_node(path):
    parser = Parser(Language(tree_sitter_bicep.language()))
    tree = parser.parse(path.read_bytes())

    problems = _syntax_problems(tree.root_node)

    assert not problems, f"{path.name}: " + "; ".join(problems)
    assert not tree.root_node.has_error


@pytest.mark.parametrize("path", BICEP_FILES, ids=FILE_IDS)
def test_pycep_parses_file(path):
    try:
        ast = infra_model.parse_bicep(path)
    except Exception as error:  # any parser failure means checkov skips the file
        pytest.fail(f"pycep cannot parse {path.name}: {type(error).__name__}: {error}")
    assert ast.get("resources") or ast.get("modules"), f"{path.name} declares nothing"


# Constructs that checkov's pycep cannot read, or that need network to resolve.
UNSUPPORTED = {
    r"=>": "lambda expression",
    r"\bdeployer\s*\(": "deployer()",
    r"@export\s*\(": "@export()",
    r"'br[:/]": "registry module reference",
    r"'ts[:/]": "template spec reference",
}


def _without_comments(text):
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.DOTALL)
    return re.sub(r"(^|\s)//.*$", "", text, flags=re.MULTILINE)


@pytest.mark.parametrize("path", BICEP_FILES, ids=FILE_IDS)
def test_no_construct_the_offline_parsers_cannot_follow(path):
    text = _without_comments(path.read_text(encoding="utf-8"))
    found = [name for pattern, name in UNSUPPORTED.items() if re.search(pattern, text)]
    assert not found, f"{path.name} uses {', '.join(found)}"
