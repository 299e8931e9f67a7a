"""The route table: every REST path of the contract, mapped to its resource.

Kept in one place so the OpenAPI document can be checked against it (a test fails when a route
exists here but not in ``schemas/openapi.json``, or the other way round).
"""

from __future__ import annotations

from typing import Any

import falcon.asgi

from anyon.api import docs, streams
from anyon.api.resources import (
    agent_login,
    approvals,
    auth_token,
    drafts,
    executions,
    git,
    github,
    mcp,
    media,
    misc,
    projects,
    system,
)
from anyon.deployment.base import Deployment
from anyon.security.auth import AccessGuard


def register(
    app: falcon.asgi.App[Any, Any], deployment: Deployment, guard: AccessGuard | None = None
) -> None:
    s = deployment.services
    add = app.add_route
    # auth: the login step trading the API token for a session cookie (POST /api/auth/token, GET /login)
    auth_token.register(app, guard)
    # §1.1 health, config and system
    add("/api/health", system.Health())
    add("/api/openapi.json", system.OpenApi(app))
    docs.register(app)  # /api/docs: Swagger UI on the document above, served from this origin
    add("/api/info", system.Info(s, deployment.is_cloud))
    add("/api/config", system.UserConfig(s))
    add("/api/profiles", system.Profiles(s))
    # §1.2 auth
    add("/api/auth/dev-login", system.DevLogin(s))
    add("/api/auth/github/check", github.Check(s))
    add("/api/auth/github/device/start", github.DeviceStart(s))
    add("/api/auth/github/device/poll", github.DevicePoll(s))
    agent_login.register(app, s.agent_login)  # the browser's login terminal for the agents
    add("/api/github/repositories", github.Repositories(s))
    add("/api/projects/from-github", github.FromGitHub(s))
    # §1.3 projects, §1.4 tasks
    add("/api/projects", projects.ProjectCollection(s))
    add("/api/projects/{project_id}", projects.ProjectItem(s))
    add("/api/projects/{project_id}/branches", git.ProjectBranches(s))
    add("/api/projects/{project_id}/search", git.ProjectSearch(s))
    add("/api/tasks", projects.TaskCollection(s))
    add("/api/tasks/create-and-start", executions.CreateAndStart(s))
    add("/api/tasks/{task_id}", projects.TaskItem(s))
    # §1.5 attempts, §1.6 processes (reads)
    add("/api/task-attempts", executions.AttemptCollection(s))
    add("/api/task-attempts/{attempt_id}", misc.AttemptItem(s))
    add("/api/execution-processes", misc.ProcessCollection(s))
    add("/api/execution-processes/{process_id}", misc.ProcessItem(s))
    # §1.5/§1.6 starting and stopping executions
    add("/api/task-attempts/{attempt_id}/follow-up", executions.FollowUp(s))
    add("/api/task-attempts/{attempt_id}/replace-process", executions.ReplaceProcess(s))
    add("/api/task-attempts/{attempt_id}/stop", executions.AttemptStop(s))
    add("/api/task-attempts/{attempt_id}/start-dev-server", executions.DevServer(s))
    add("/api/execution-processes/{process_id}/stop", executions.ProcessStop(s))
    add("/api/executions/status", executions.ExecutionStatus(s))
    # §1.5 git operations of an attempt
    attempt = "/api/task-attempts/{attempt_id}"
    add(f"{attempt}/branch-status", git.BranchStatus(s))
    add(f"{attempt}/merge", git.Merge(s))
    add(f"{attempt}/rebase", git.Rebase(s))
    add(f"{attempt}/conflicts/abort", git.AbortConflicts(s))
    add(f"{attempt}/change-target-branch", git.ChangeTargetBranch(s))
    add(f"{attempt}/rename-branch", git.RenameBranch(s))
    add(f"{attempt}/commit-info", git.CommitInfo(s))
    add(f"{attempt}/commit-compare", git.CommitCompare(s))
    add(f"{attempt}/delete-file", git.DeleteFile(s))
    add(f"{attempt}/children", git.Children(s))
    add(f"{attempt}/push", github.Push(s))
    add(f"{attempt}/pr", github.CreatePr(s))
    add(f"{attempt}/pr/attach", github.AttachPr(s))
    add(f"{attempt}/draft", drafts.AttemptDraft(s))
    add(f"{attempt}/draft/queue", drafts.DraftQueue(s))
    # §1.7 misc
    add("/api/filesystem/directory", misc.Directory(s))
    add("/api/filesystem/git-repos", git.GitRepos(s))
    add("/api/tags", misc.TagCollection(s))
    add("/api/tags/{tag_id}", misc.TagItem(s))
    add("/api/images/task/{task_id}", misc.TaskImages(s))
    upload = media.ImageUpload(s)
    add("/api/images/upload", upload)
    add("/api/images/task/{task_id}/upload", upload)
    add("/api/images/{image_id}", media.ImageItem(s))
    add("/api/images/{image_id}/file", media.ImageFile(s))
    add("/api/sounds/{sound}", media.Sound(s))
    add("/api/mcp-config", mcp.McpConfig(s))
    add("/api/containers/info", misc.ContainerInfo(s))
    add("/api/approvals/{approval_id}/respond", approvals.ApprovalRespond(s))
    # peripheral features not offered yet: soft errors, never a crash (spec §8)
    add("/api/task-attempts/{attempt_id}/run-agent-setup", executions.AgentSetup(s))
    # §2 streams
    add("/api/events", streams.EventsSse(s))
    add("/api/tasks/stream/ws", streams.TasksStream(s))
    add("/api/execution-processes/stream/ws", streams.ProcessesStream(s))
    add("/api/execution-processes/{process_id}/raw-logs/ws", streams.RawLogsStream(s))
    add("/api/execution-processes/{process_id}/normalized-logs/ws", streams.NormalizedLogsStream(s))
    add("/api/task-attempts/{attempt_id}/diff/ws", streams.DiffStream(s))
    add("/api/drafts/stream/ws", streams.DraftsStream(s))
    # end §2 streams
