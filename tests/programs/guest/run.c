/*
 * run.c: /rec/run in the guests of tests/programs/record.sh (built static).
 *
 *   run DIR ARG0 ARG...
 *
 * Runs ARG0 ARG... as a shell would run a simple command: ARG0 looked up in PATH (execvp), argv[0]
 * exactly ARG0, with
 *   stdin   /dev/null
 *   stdout  DIR/stdout (created)
 *   stderr  DIR/stderr (created)
 *   environment  exactly PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
 *                and HOME=/root (Debian's root login), nothing else
 * and writes DIR/exit: "exit N" (the exit status), "signal N" (killed by signal N) or
 * "exec ERRNO" (ARG0 could not be executed; errno number). Exit status of run itself: 0, or 2 on
 * a usage or setup error (message on its stderr).
 *
 * A static helper rather than the guest shell, because busybox's standalone shell runs its own
 * applets before looking in PATH (its lsmod, not kmod's).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define PATHVAR "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

static int open_out(const char *dir, const char *name)
{
	char p[4096];
	int fd;

	if (snprintf(p, sizeof(p), "%s/%s", dir, name) >= (int)sizeof(p))
		return -1;
	fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	return fd;
}

int main(int argc, char **argv)
{
	int in, out, err, st, pfd[2], e = 0;
	char res[64];
	pid_t pid;
	FILE *f;
	char p[4096];

	if (argc < 3) {
		fprintf(stderr, "usage: run DIR ARG0 ARG...\n");
		return 2;
	}
	in = open("/dev/null", O_RDONLY | O_CLOEXEC);
	out = open_out(argv[1], "stdout");
	err = open_out(argv[1], "stderr");
	if (in < 0 || out < 0 || err < 0 || pipe2(pfd, O_CLOEXEC) < 0) {
		perror("run: setup");
		return 2;
	}
	pid = fork();
	if (pid < 0) {
		perror("run: fork");
		return 2;
	}
	if (pid == 0) {
		if (dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0)
			_exit(126);
		clearenv();
		setenv("PATH", PATHVAR, 1);
		setenv("HOME", "/root", 1);
		execvp(argv[2], argv + 2);
		e = errno;
		/* tell the parent why: the command's own stderr must stay the command's */
		if (write(pfd[1], &e, sizeof(e)) != sizeof(e))
			_exit(127);
		_exit(127);
	}
	close(pfd[1]);
	if (read(pfd[0], &e, sizeof(e)) != sizeof(e))
		e = 0;
	while (waitpid(pid, &st, 0) < 0) {
		if (errno != EINTR) {
			perror("run: waitpid");
			return 2;
		}
	}
	if (e)
		snprintf(res, sizeof(res), "exec %d", e);
	else if (WIFEXITED(st))
		snprintf(res, sizeof(res), "exit %d", WEXITSTATUS(st));
	else if (WIFSIGNALED(st))
		snprintf(res, sizeof(res), "signal %d", WTERMSIG(st));
	else
		snprintf(res, sizeof(res), "status %d", st);
	if (snprintf(p, sizeof(p), "%s/exit", argv[1]) >= (int)sizeof(p) || !(f = fopen(p, "w"))) {
		perror("run: exit file");
		return 2;
	}
	fprintf(f, "%s\n", res);
	if (fclose(f) != 0) {
		perror("run: exit file");
		return 2;
	}
	return 0;
}
