"""JSON Schemas of the response ``data`` shapes (spec/types.md), for the OpenAPI document.

Each schema follows the field tables of types.md: keys marked R or N are required (N may be null),
keys marked O are optional. Extra keys are allowed, as the UI ignores them. Request shapes are not
here: they come from the validators' own declarations (``anyon.api.validation.F``).
"""

from __future__ import annotations

from typing import Any

from anyon.services.board.user_config import config_json_schema

STR: dict[str, Any] = {"type": "string"}
STR_N: dict[str, Any] = {"type": ["string", "null"]}
INT: dict[str, Any] = {"type": "integer"}
INT_N: dict[str, Any] = {"type": ["integer", "null"]}
BOOL: dict[str, Any] = {"type": "boolean"}
UUID: dict[str, Any] = {"type": "string", "format": "uuid"}
UUID_N: dict[str, Any] = {"type": ["string", "null"], "format": "uuid"}
TS = STR
TS_N = STR_N


def obj(required: dict[str, Any], optional: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "type": "object",
        "required": sorted(required),
        "properties": {**required, **(optional or {})},
    }


def ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def array(name: str) -> dict[str, Any]:
    return {"type": "array", "items": ref(name)}


TASK_FIELDS: dict[str, Any] = {
    "id": UUID,
    "project_id": UUID,
    "title": STR,
    "description": STR_N,
    "status": {"enum": ["todo", "inprogress", "inreview", "done", "cancelled"]},
    "parent_task_attempt": UUID_N,
    "created_at": TS,
    "updated_at": TS,
}
PROFILE_ID = obj({"executor": STR}, {"variant": STR_N})
DIRECTORY_ENTRY = obj(
    {"name": STR, "path": STR, "is_directory": BOOL, "is_git_repo": BOOL, "last_modified": INT_N}
)

SCHEMAS: dict[str, dict[str, Any]] = {
    "HealthOk": {"const": "OK"},
    "string": STR,
    "null": {"type": "null"},
    "DevicePollStatus": {"enum": ["SLOW_DOWN", "AUTHORIZATION_PENDING", "SUCCESS"]},
    "CheckTokenResponse": {"enum": ["VALID", "INVALID"]},
    "DeviceFlowStartResponse": obj(
        {"user_code": STR, "verification_uri": STR, "expires_in": INT, "interval": INT}
    ),
    "RepositoryInfo": obj(
        {
            "id": INT,
            "name": STR,
            "full_name": STR,
            "owner": STR,
            "description": STR_N,
            "clone_url": STR,
            "ssh_url": STR,
            "default_branch": STR,
            "private": BOOL,
        }
    ),
    "AttachPrResponse": obj(
        {
            "pr_attached": BOOL,
            "pr_url": STR_N,
            "pr_number": INT_N,
            "pr_status": {"enum": ["open", "merged", "closed", "unknown", None]},
        }
    ),
    "Config": config_json_schema(),
    "ExecutorConfigs": obj({"executors": {"type": "object"}}) | {"additionalProperties": False},
    "ProfilesContent": obj({"content": STR, "path": STR}),
    "UserSystemInfo": obj(
        {
            "config": ref("Config"),
            "analytics_user_id": STR,
            "executors": {"type": "object"},
            "environment": obj({"os_type": STR, "os_version": STR, "os_architecture": STR, "bitness": STR}),
            "github_secret_state": obj({"has_oauth_token": BOOL, "has_pat": BOOL}),
            "claude_secret_state": obj({"has_credentials": BOOL}),
            "is_cloud": BOOL,
            "capabilities": {
                "type": "object",
                "additionalProperties": {
                    "type": "array",
                    "items": {"enum": ["SESSION_FORK", "SETUP_HELPER"]},
                },
            },
        }
    ),
    "Project": obj(
        {
            "id": UUID,
            "name": STR,
            "git_repo_path": STR,
            "setup_script": STR_N,
            "dev_script": STR_N,
            "cleanup_script": STR_N,
            "copy_files": STR_N,
            "created_at": TS,
            "updated_at": TS,
        }
    ),
    "GitBranch": obj({"name": STR, "is_current": BOOL, "is_remote": BOOL, "last_commit_date": TS}),
    "SearchResult": obj(
        {"path": STR, "is_file": BOOL, "match_type": {"enum": ["FileName", "DirectoryName", "FullPath"]}}
    ),
    "Task": obj(TASK_FIELDS),
    "TaskWithAttemptStatus": obj(
        {
            **TASK_FIELDS,
            "has_in_progress_attempt": BOOL,
            "has_merged_attempt": BOOL,
            "last_attempt_failed": BOOL,
            "executor": STR,
        }
    ),
    "TaskAttempt": obj(
        {
            "id": UUID,
            "task_id": UUID,
            "container_ref": STR_N,
            "branch": STR,
            "target_branch": STR,
            "executor": STR,
            "worktree_deleted": BOOL,
            "setup_completed_at": TS_N,
            "created_at": TS,
            "updated_at": TS,
        }
    ),
    "TaskRelationships": obj(
        {
            "parent_task": {"anyOf": [ref("Task"), {"type": "null"}]},
            "current_attempt": ref("TaskAttempt"),
            "children": array("Task"),
        }
    ),
    "ExecutionProcess": obj(
        {
            "id": UUID,
            "task_attempt_id": UUID,
            "run_reason": {"enum": ["setupscript", "cleanupscript", "codingagent", "devserver"]},
            "executor_action": {},
            "before_head_commit": STR_N,
            "after_head_commit": STR_N,
            "status": {"enum": ["running", "completed", "failed", "killed"]},
            "exit_code": INT_N,
            "dropped": BOOL,
            "started_at": TS,
            "completed_at": TS_N,
            "created_at": TS,
            "updated_at": TS,
        }
    ),
    "ExecutionStatus": obj({"running": INT, "queued": INT, "live": INT}),
    "ReplaceProcessResult": obj(
        {
            "deleted_count": INT,
            "git_reset_needed": BOOL,
            "git_reset_applied": BOOL,
            "target_before_oid": STR_N,
            "new_execution_id": UUID_N,
        }
    ),
    "Merge": {
        "oneOf": [
            obj(
                {
                    "type": {"const": "direct"},
                    "id": UUID,
                    "task_attempt_id": UUID,
                    "merge_commit": STR_N,
                    "target_branch_name": STR,
                    "created_at": TS,
                }
            ),
            obj(
                {
                    "type": {"const": "pr"},
                    "id": UUID,
                    "task_attempt_id": UUID,
                    "created_at": TS,
                    "target_branch_name": STR,
                    "pr_info": obj(
                        {
                            "number": INT_N,
                            "url": STR_N,
                            "status": {"enum": ["open", "merged", "closed", "unknown"]},
                            "merged_at": TS_N,
                            "merge_commit_sha": STR_N,
                        }
                    ),
                }
            ),
        ]
    },
    "BranchStatus": obj(
        {
            "target_branch_name": STR,
            "merges": array("Merge"),
            "is_rebase_in_progress": BOOL,
            "conflict_op": {"enum": ["rebase", "merge", "cherry_pick", "revert", None]},
            "conflicted_files": {"type": "array", "items": STR},
        },
        {
            "commits_behind": INT_N,
            "commits_ahead": INT_N,
            "has_uncommitted_changes": {"type": ["boolean", "null"]},
            "head_oid": STR_N,
            "uncommitted_count": INT_N,
            "untracked_count": INT_N,
            "remote_commits_behind": INT_N,
            "remote_commits_ahead": INT_N,
        },
    ),
    "GitOperationError": {
        "oneOf": [
            obj(
                {
                    "type": {"const": "merge_conflicts"},
                    "message": STR,
                    "op": {"enum": ["rebase", "merge", "cherry_pick", "revert"]},
                }
            ),
            obj({"type": {"const": "rebase_in_progress"}}),
        ]
    },
    "ChangeTargetBranchResponse": obj(
        {
            "new_target_branch": STR,
            "status": {"type": "array", "items": INT, "minItems": 2, "maxItems": 2},
        }
    ),
    "RenameBranchResponse": obj({"branch": STR}),
    "CommitInfo": obj({"sha": STR, "subject": STR}),
    "CommitCompareResult": obj(
        {
            "head_oid": STR,
            "target_oid": STR,
            "ahead_from_head": INT,
            "behind_from_head": INT,
            "is_linear": BOOL,
        }
    ),
    "DraftResponse": obj(
        {
            "task_attempt_id": UUID,
            "draft_type": {"enum": ["follow_up", "retry"]},
            "retry_process_id": UUID_N,
            "prompt": STR,
            "queued": BOOL,
            "variant": STR_N,
            "image_ids": {"type": ["array", "null"], "items": UUID},
            "version": INT,
        }
    ),
    "Tag": obj({"id": UUID, "tag_name": STR, "content": STR, "created_at": TS, "updated_at": TS}),
    "ImageResponse": obj(
        {
            "id": UUID,
            "file_path": STR,
            "original_name": STR,
            "mime_type": STR_N,
            "size_bytes": INT,
            "hash": STR,
            "created_at": TS,
            "updated_at": TS,
        }
    ),
    "DirectoryEntry": DIRECTORY_ENTRY,
    "DirectoryListResponse": obj({"entries": array("DirectoryEntry"), "current_path": STR}),
    "ContainerInfo": obj({"attempt_id": UUID, "task_id": UUID, "project_id": UUID}),
    "ExecutorProfileId": PROFILE_ID,
    "AuthTokenResult": obj({"auth_required": BOOL}, {"expires_in_seconds": INT}),
    "GetMcpServerResponse": obj(
        {
            "mcp_config": obj(
                {
                    "servers": {"type": "object"},
                    "servers_path": {"type": "array", "items": {"type": "string"}},
                    "template": {"type": "object"},
                    "preconfigured": {"type": "object"},
                    "is_toml_config": BOOL,
                }
            ),
            "config_path": STR,
        }
    ),
    "ApprovalStatus": obj(
        {"status": {"enum": ["pending", "approved", "denied", "timed_out"]}}, {"reason": STR_N}
    ),
    "OpenApiDocument": obj({"openapi": STR, "paths": {"type": "object"}}),
    "ClaudeLoginSession": obj({"session_id": STR}),
    "EmptyObject": obj({}),
    "ClaudePtyLogEntry": obj({"timestamp": STR, "direction": STR, "data": STR}),
    "ClaudePtyLog": obj({"session_id": STR, "entries": array("ClaudePtyLogEntry")}),
}


def data_schema(name: str) -> dict[str, Any]:
    """The schema of a ``data`` name as used by ``api_operation``: ``"X"`` or ``"X[]"``."""
    if name.endswith("[]"):
        return array(name[:-2])
    if name not in SCHEMAS:
        raise KeyError(f"no response schema named {name!r} in anyon.api.schemas")
    return ref(name)
