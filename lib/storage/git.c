/*
 * storage/git — everything libgit2 does for storage: the git+https:// and
 * git+file:// providers (a clone checked out at a pinned commit and
 * verified; outputs committed onto a branch of a local repository), and
 * state snapshots: a directory recorded as a commit, restored from one, and
 * moved between repositories as a pack holding only the objects the
 * receiver lacks (the receiver names the commits it has, the sender walks
 * from the wanted commit hiding those, exactly git's fetch negotiation
 * reduced to one round).
 */
#include "storage.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <git2.h>
#include "dlgit.h"

#define SNAP_REF "refs/heads/snapshots"

static const char *gerr(void)
{
	const git_error *e = git_error_last();
	return e && e->message ? e->message : "unknown libgit2 error";
}

static int gfail(char *err, const char *what)
{
	return nn_seterr(err, "%s: %s", what, gerr());
}

static int is_hex(const char *s, size_t n)
{
	size_t i;
	for (i = 0; i < n; i++)
		if (!strchr("0123456789abcdef", s[i]))
			return 0;
	return 1;
}

/* Resolve rev (hex id, or branch/tag name, trying the clone's remote
 * branches) to a commit.  0, or -1 with err. */
static int resolve(git_repository *repo, const char *rev, git_oid *out, char *err)
{
	char *tries[4];
	git_object *obj = NULL, *peeled = NULL;
	size_t i, n = strlen(rev);
	int rc = -1;

	if (n == GIT_OID_HEXSZ && is_hex(rev, n)) {
		git_commit *c;
		if (git_oid_fromstr(out, rev) < 0 || git_commit_lookup(&c, repo, out) < 0)
			return nn_seterr(err, "no commit %s", rev);
		git_commit_free(c);
		return 0;
	}
	tries[0] = nn_xasprintf("refs/tags/%s", rev);
	tries[1] = nn_xasprintf("refs/remotes/origin/%s", rev);
	tries[2] = nn_xasprintf("refs/heads/%s", rev);
	tries[3] = nn_xstrdup(rev);
	for (i = 0; i < 4 && rc < 0; i++) {
		if (git_revparse_single(&obj, repo, tries[i]) < 0)
			continue;
		if (git_object_peel(&peeled, obj, GIT_OBJECT_COMMIT) == 0) {
			git_oid_cpy(out, git_object_id(peeled));
			git_object_free(peeled);
			rc = 0;
		}
		git_object_free(obj);
	}
	for (i = 0; i < 4; i++)
		free(tries[i]);
	if (rc < 0)
		nn_seterr(err, "no commit or ref '%s'", rev);
	return rc;
}

/* ---- fetch: clone, check out, verify ---- */

static int clone_progress(const git_indexer_progress *st, void *arg)
{
	struct nn_xfer *x = arg;
	return nn_xfer_progress(x, st->received_bytes, 0, 0) ? -1 : 0;
}

static int net_error(void)
{
	const git_error *e = git_error_last();
	return e && (e->klass == GIT_ERROR_NET || e->klass == GIT_ERROR_HTTP ||
		     e->klass == GIT_ERROR_SSL || e->klass == GIT_ERROR_SSH);
}

/* Split git+SCHEME://…#REV into the remote URL and rev (caller frees). */
static int split_url(const char *url, char **remote, char **rev, char *err)
{
	const char *hash = strrchr(url, '#');

	if (!hash || !hash[1])
		return nn_seterr(err, "'%s' is not pinned: add #COMMIT (or #BRANCH for an output)", url);
	*remote = strndup(url + 4, (size_t)(hash - url - 4));
	*rev = nn_xstrdup(hash + 1);
	return 0;
}

int nn_storage_git_fetch(struct nn_xfer *x, const char *url, const char *dir, char *err)
{
	git_clone_options co;
	git_checkout_options ck;
	git_repository *repo = NULL;
	git_commit *commit = NULL;
	git_reference *head = NULL;
	char *remote = NULL, *rev = NULL, msg[NN_ERRLEN];
	git_oid oid;
	int rc = -1;

	if (nn_dlgit_load(msg) < 0)
		return nn_xfer_fail(x, NN_EX_UNAVAILABLE, 0, err, "%s", msg);
	if (split_url(url, &remote, &rev, err) < 0)
		return nn_xfer_fail(x, NN_EX_DATAERR, 0, NULL, "%s", "");
	git_libgit2_init();
	git_clone_options_init(&co, GIT_CLONE_OPTIONS_VERSION);
	git_checkout_options_init(&ck, GIT_CHECKOUT_OPTIONS_VERSION);
	co.checkout_opts.checkout_strategy = GIT_CHECKOUT_NONE;
	co.fetch_opts.callbacks.transfer_progress = clone_progress;
	co.fetch_opts.callbacks.payload = x;
	if (git_clone(&repo, remote, dir, &co) < 0) {
		int net = net_error();
		rc = nn_xfer_fail(x, net ? NN_EX_TEMPFAIL : NN_EX_UNAVAILABLE, net, err,
				  "cannot clone '%s': %s", remote, gerr());
		goto out;
	}
	if (resolve(repo, rev, &oid, msg) < 0) {
		rc = nn_xfer_fail(x, NN_EX_DATAERR, 0, err, "'%s': %s", url, msg);
		goto out;
	}
	if (git_commit_lookup(&commit, repo, &oid) < 0) {
		rc = nn_xfer_fail(x, NN_EX_DATAERR, 0, err, "'%s': %s", url, gerr());
		goto out;
	}
	ck.checkout_strategy = GIT_CHECKOUT_FORCE;
	if (git_checkout_tree(repo, (git_object *)commit, &ck) < 0 ||
	    git_repository_set_head_detached(repo, &oid) < 0) {
		rc = nn_xfer_fail(x, NN_EX_IOERR, 0, err, "cannot check out %s: %s", rev, gerr());
		goto out;
	}
	/* Verify: HEAD is the commit asked for, and the work tree matches it. */
	if (git_repository_head(&head, repo) < 0 || !git_reference_target(head) ||
	    !git_oid_equal(git_reference_target(head), &oid)) {
		rc = nn_xfer_fail(x, NN_EX_SOFTWARE, 0, err, "'%s': HEAD is not %s after checkout",
				  url, rev);
		goto out;
	}
	{
		git_status_list *sl = NULL;
		git_status_options so;
		git_status_options_init(&so, GIT_STATUS_OPTIONS_VERSION);
		so.flags = GIT_STATUS_OPT_INCLUDE_UNTRACKED;
		if (git_status_list_new(&sl, repo, &so) < 0 || git_status_list_entrycount(sl) != 0) {
			git_status_list_free(sl);
			rc = nn_xfer_fail(x, NN_EX_SOFTWARE, 0, err,
					  "'%s': the checkout does not match commit %s", url, rev);
			goto out;
		}
		git_status_list_free(sl);
	}
	git_oid_tostr(x->r->commit, sizeof x->r->commit, &oid);
	rc = 0;
out:
	git_reference_free(head);
	git_commit_free(commit);
	git_repository_free(repo);
	git_libgit2_shutdown();
	free(remote);
	free(rev);
	return rc;
}

/* ---- a directory as a tree ---- */

/*
 * Snapshots store a file larger than CHUNK_MIN as a subtree NAME.nunet-chunks
 * of CHUNK-byte blobs named by their index (%08x), so that changing 1 MiB in
 * the middle of a large file sends about 1 MiB, not the whole file: git
 * stores and transfers whole blobs.  Restore joins the chunks again.
 */
#define CHUNK_SUFFIX ".nunet-chunks"
#define CHUNK (1u << 20)
#define CHUNK_MIN (2u << 20)

static int write_chunks(git_repository *repo, git_odb *odb, const char *path, int exec,
			git_oid *out, char *err)
{
	git_treebuilder *tb = NULL;
	git_filemode_t mode = exec ? GIT_FILEMODE_BLOB_EXECUTABLE : GIT_FILEMODE_BLOB;
	char *buf = NULL, name[16];
	unsigned idx = 0;
	int fd, rc = -1;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return nn_seterr(err, "cannot open '%s': %s", path, strerror(errno));
	if (git_treebuilder_new(&tb, repo, NULL) < 0) {
		gfail(err, "cannot build a tree");
		goto out;
	}
	buf = nn_xmalloc(CHUNK);
	for (;;) {
		size_t got = 0;
		git_oid oid;
		while (got < CHUNK) {
			ssize_t k = read(fd, buf + got, CHUNK - got);
			if (k < 0 && errno == EINTR)
				continue;
			if (k < 0) {
				nn_seterr(err, "cannot read '%s': %s", path, strerror(errno));
				goto out;
			}
			if (k == 0)
				break;
			got += (size_t)k;
		}
		if (got == 0)
			break;
		if (git_odb_hash(&oid, buf, got, GIT_OBJECT_BLOB) < 0 ||
		    (!git_odb_exists(odb, &oid) &&
		     git_blob_create_from_buffer(&oid, repo, buf, got) < 0)) {
			nn_seterr(err, "cannot store '%s': %s", path, gerr());
			goto out;
		}
		snprintf(name, sizeof name, "%08x", idx++);
		if (git_treebuilder_insert(NULL, tb, name, &oid, mode) < 0) {
			gfail(err, "cannot add to a tree");
			goto out;
		}
		if (got < CHUNK)
			break;
	}
	if (git_treebuilder_write(out, tb) < 0) {
		gfail(err, "cannot write a tree");
		goto out;
	}
	rc = 0;
out:
	free(buf);
	git_treebuilder_free(tb);
	close(fd);
	return rc;
}

/* A file of a live state directory that is no longer there (the job
 * renamed or removed it while the snapshot read the directory). */
static int gone(const char *path)
{
	struct stat st;
	return lstat(path, &st) < 0 && errno == ENOENT;
}

/* Write dir as a tree into repo.  *empty is set when nothing was kept. */
static int write_tree(git_repository *repo, git_odb *odb, const char *dir, int chunked,
		      git_oid *out, int *empty, char *err)
{
	git_treebuilder *tb = NULL;
	struct dirent *de;
	struct stat st;
	DIR *d;
	int rc = -1;

	*empty = 1;
	d = opendir(dir);
	if (!d)
		return nn_seterr(err, "cannot open '%s': %s", dir, strerror(errno));
	if (git_treebuilder_new(&tb, repo, NULL) < 0) {
		gfail(err, "cannot build a tree");
		goto out;
	}
	while ((de = readdir(d))) {
		char *p;
		git_oid oid;
		git_filemode_t mode;
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..") ||
		    !strcmp(de->d_name, ".git"))
			continue;
		p = nn_xasprintf("%s/%s", dir, de->d_name);
		if (lstat(p, &st) < 0) {
			if (errno == ENOENT) {	/* removed since it was listed */
				free(p);
				continue;
			}
			nn_seterr(err, "cannot stat '%s': %s", p, strerror(errno));
			free(p);
			goto out;
		}
		if (S_ISDIR(st.st_mode)) {
			int sub_empty;
			if (write_tree(repo, odb, p, chunked, &oid, &sub_empty, err) < 0) {
				free(p);
				goto out;
			}
			if (sub_empty) {
				free(p);
				continue;
			}
			mode = GIT_FILEMODE_TREE;
		} else if (S_ISREG(st.st_mode) && chunked && (uint64_t)st.st_size > CHUNK_MIN) {
			char *cname = nn_xasprintf("%s" CHUNK_SUFFIX, de->d_name);
			int bad = write_chunks(repo, odb, p, st.st_mode & 0111, &oid, err) < 0;
			if (bad && gone(p)) {
				free(cname);
				free(p);
				continue;
			}
			if (!bad && git_treebuilder_insert(NULL, tb, cname, &oid, GIT_FILEMODE_TREE) < 0)
				bad = gfail(err, "cannot add to a tree");
			if (bad) {
				free(cname);
				free(p);
				goto out;
			}
			free(cname);
			free(p);
			*empty = 0;
			continue;
		} else if (S_ISREG(st.st_mode)) {
			/* Hash first: an unchanged file is not rewritten. */
			if (git_odb_hashfile(&oid, p, GIT_OBJECT_BLOB) < 0 ||
			    (!git_odb_exists(odb, &oid) && git_blob_create_from_disk(&oid, repo, p) < 0)) {
				if (gone(p)) {	/* renamed or removed while read */
					free(p);
					continue;
				}
				nn_seterr(err, "cannot store '%s': %s", p, gerr());
				free(p);
				goto out;
			}
			mode = st.st_mode & 0111 ? GIT_FILEMODE_BLOB_EXECUTABLE : GIT_FILEMODE_BLOB;
		} else if (S_ISLNK(st.st_mode)) {
			char target[PATH_MAX];
			ssize_t n = readlink(p, target, sizeof target);
			if (n < 0 || git_blob_create_from_buffer(&oid, repo, target, (size_t)n) < 0) {
				nn_seterr(err, "cannot store link '%s'", p);
				free(p);
				goto out;
			}
			mode = GIT_FILEMODE_LINK;
		} else {
			free(p);	/* sockets, fifos, devices: not state */
			continue;
		}
		free(p);
		if (git_treebuilder_insert(NULL, tb, de->d_name, &oid, mode) < 0) {
			gfail(err, "cannot add to a tree");
			goto out;
		}
		*empty = 0;
	}
	if (git_treebuilder_write(out, tb) < 0) {
		gfail(err, "cannot write a tree");
		goto out;
	}
	rc = 0;
out:
	git_treebuilder_free(tb);
	closedir(d);
	return rc;
}

static int open_or_init(git_repository **repo, const char *path, char *err)
{
	if (git_repository_open_ext(repo, path, GIT_REPOSITORY_OPEN_NO_SEARCH, NULL) == 0)
		return 0;
	git_config *cfg = NULL;
	if (git_repository_init(repo, path, 1) < 0)
		return nn_seterr(err, "cannot create repository '%s': %s", path, gerr());
	/* State is mostly large and already compressed: a delta search over
	 * a window of such blobs costs minutes and saves nothing, so keep the
	 * window to one object. */
	if (git_repository_config(&cfg, *repo) == 0) {
		git_config_set_int64(cfg, "pack.windowMemory", 1);
		git_config_free(cfg);
	}
	return 0;
}

/* Commit the tree of src (a directory, or one file at the tree's root) onto
 * ref.  For a snapshot, large files are chunked and an unchanged tree makes
 * no new commit. */
static int commit_path(const char *src, const char *repo_path, const char *ref,
		       const char *message, int snapshot, git_oid *out, char *err)
{
	git_repository *repo = NULL;
	git_odb *odb = NULL;
	git_commit *parent = NULL;
	git_tree *tree = NULL;
	git_signature *sig = NULL;
	git_oid tree_oid, pid;
	struct stat st;
	int rc = -1, empty;

	if (stat(src, &st) < 0)
		return nn_seterr(err, "cannot open '%s': %s", src, strerror(errno));
	if (open_or_init(&repo, repo_path, err) < 0)
		return -1;
	if (git_repository_odb(&odb, repo) < 0) {
		gfail(err, repo_path);
		goto out;
	}
	if (S_ISDIR(st.st_mode)) {
		if (write_tree(repo, odb, src, snapshot, &tree_oid, &empty, err) < 0)
			goto out;
	} else {
		git_treebuilder *tb = NULL;
		git_oid blob;
		const char *base = strrchr(src, '/');
		base = base ? base + 1 : src;
		if (git_blob_create_from_disk(&blob, repo, src) < 0 ||
		    git_treebuilder_new(&tb, repo, NULL) < 0 ||
		    git_treebuilder_insert(NULL, tb, base, &blob,
					   st.st_mode & 0111 ? GIT_FILEMODE_BLOB_EXECUTABLE :
					   GIT_FILEMODE_BLOB) < 0 ||
		    git_treebuilder_write(&tree_oid, tb) < 0) {
			git_treebuilder_free(tb);
			nn_seterr(err, "cannot store '%s': %s", src, gerr());
			goto out;
		}
		git_treebuilder_free(tb);
	}
	if (git_reference_name_to_id(&pid, repo, ref) == 0 &&
	    git_commit_lookup(&parent, repo, &pid) < 0) {
		gfail(err, ref);
		goto out;
	}
	if (snapshot && parent && git_oid_equal(git_commit_tree_id(parent), &tree_oid)) {
		git_oid_cpy(out, &pid);
		rc = 0;
		goto out;
	}
	if (git_tree_lookup(&tree, repo, &tree_oid) < 0 ||
	    git_signature_now(&sig, "nunet", "nunet@localhost") < 0) {
		gfail(err, "cannot commit");
		goto out;
	}
	if (git_commit_create(out, repo, ref, sig, sig, NULL, message, tree, parent ? 1 : 0,
			      (const git_commit **)&parent) < 0) {
		nn_seterr(err, "cannot commit to '%s' in '%s': %s", ref, repo_path, gerr());
		goto out;
	}
	rc = 0;
out:
	git_signature_free(sig);
	git_tree_free(tree);
	git_commit_free(parent);
	git_odb_free(odb);
	git_repository_free(repo);
	return rc;
}

int nn_storage_git_put(struct nn_xfer *x, const char *path, const char *url, char *err)
{
	char *remote = NULL, *rev = NULL, *ref;
	const char *hash = strrchr(url, '#');
	char msg[NN_ERRLEN];
	git_oid oid;
	int rc;

	if (nn_dlgit_load(msg) < 0)
		return nn_xfer_fail(x, NN_EX_UNAVAILABLE, 0, err, "%s", msg);
	if (strncmp(url, "git+file:///", 12))
		return nn_xfer_fail(x, NN_EX_DATAERR, 0, err,
				    "'%s': git outputs go to a local repository (git+file:///PATH#BRANCH)", url);
	if (hash && hash[1]) {
		split_url(url, &remote, &rev, err);
	} else {
		remote = strndup(url + 4, hash ? (size_t)(hash - url - 4) : strlen(url + 4));
		rev = nn_xstrdup("main");
	}
	ref = nn_xasprintf("refs/heads/%s", rev);
	if (!git_reference_is_valid_name(ref)) {
		rc = nn_xfer_fail(x, NN_EX_DATAERR, 0, err, "'%s': '%s' is not a branch name", url, rev);
	} else {
		git_libgit2_init();
		rc = commit_path(path, remote + 7, ref, x->o->message ? x->o->message : "nunet output\n",
				 0, &oid, err);
		git_libgit2_shutdown();
		if (rc < 0)
			x->code = NN_EX_IOERR, x->temporary = 0;
		else
			git_oid_tostr(x->r->commit, sizeof x->r->commit, &oid);
	}
	free(ref);
	free(remote);
	free(rev);
	return rc;
}

/* ---- snapshots ---- */

int nn_snapshot_commit(const char *dir, const char *repo, const char *ref, const char *message,
		       char out[65], char *err)
{
	struct stat st;
	git_oid oid;
	int rc;

	if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode))
		return nn_seterr(err, "'%s' is not a directory", dir);
	git_libgit2_init();
	rc = commit_path(dir, repo, ref ? ref : SNAP_REF, message ? message : "nunet snapshot\n",
			 1, &oid, err);
	if (rc == 0)
		git_oid_tostr(out, 65, &oid);
	git_libgit2_shutdown();
	return rc;
}

struct restore {
	git_repository *repo;
	const char *root;
	char *err;
	int failed;
};

/* Write the chunks of tree id, in order, as the file p. */
static int join_chunks(struct restore *rs, const git_oid *id, const char *p)
{
	git_tree *t = NULL;
	size_t i, n;
	int fd = -1, rc = -1;

	if (git_tree_lookup(&t, rs->repo, id) < 0)
		return nn_seterr(rs->err, "missing object for '%s': %s", p, gerr());
	n = git_tree_entrycount(t);
	fd = open(p, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
		  n && git_tree_entry_filemode(git_tree_entry_byindex(t, 0)) ==
		  GIT_FILEMODE_BLOB_EXECUTABLE ? 0755 : 0644);
	if (fd < 0) {
		nn_seterr(rs->err, "cannot create '%s': %s", p, strerror(errno));
		goto out;
	}
	for (i = 0; i < n; i++) {
		git_blob *b = NULL;
		if (git_blob_lookup(&b, rs->repo, git_tree_entry_id(git_tree_entry_byindex(t, i))) < 0) {
			nn_seterr(rs->err, "missing object for '%s': %s", p, gerr());
			goto out;
		}
		if (nn_write_all(fd, git_blob_rawcontent(b), (size_t)git_blob_rawsize(b)) < 0) {
			nn_seterr(rs->err, "cannot write '%s': %s", p, strerror(errno));
			git_blob_free(b);
			goto out;
		}
		git_blob_free(b);
	}
	if (close(fd) < 0) {
		fd = -1;
		nn_seterr(rs->err, "cannot write '%s': %s", p, strerror(errno));
		goto out;
	}
	fd = -1;
	rc = 0;
out:
	if (fd >= 0)
		close(fd);
	git_tree_free(t);
	return rc;
}

static int restore_entry(const char *prefix, const git_tree_entry *e, void *arg)
{
	struct restore *rs = arg;
	char *p = nn_xasprintf("%s/%s%s", rs->root, prefix, git_tree_entry_name(e));
	git_filemode_t mode = git_tree_entry_filemode(e);
	git_blob *blob = NULL;
	int rc = 0;

	size_t nl = strlen(p), sl = strlen(CHUNK_SUFFIX);

	if (mode == GIT_FILEMODE_TREE && nl > sl && !strcmp(p + nl - sl, CHUNK_SUFFIX)) {
		p[nl - sl] = '\0';
		rc = join_chunks(rs, git_tree_entry_id(e), p);
		free(p);
		if (rc < 0) {
			rs->failed = 1;
			return -1;
		}
		return 1;	/* do not walk into the chunks */
	} else if (mode == GIT_FILEMODE_TREE) {
		if (mkdir(p, 0755) < 0 && errno != EEXIST)
			rc = nn_seterr(rs->err, "cannot create '%s': %s", p, strerror(errno));
	} else if (mode == GIT_FILEMODE_BLOB || mode == GIT_FILEMODE_BLOB_EXECUTABLE ||
		   mode == GIT_FILEMODE_LINK) {
		if (git_blob_lookup(&blob, rs->repo, git_tree_entry_id(e)) < 0) {
			rc = nn_seterr(rs->err, "missing object for '%s': %s", p, gerr());
		} else if (mode == GIT_FILEMODE_LINK) {
			char *t = strndup(git_blob_rawcontent(blob), (size_t)git_blob_rawsize(blob));
			if (symlink(t, p) < 0)
				rc = nn_seterr(rs->err, "cannot link '%s': %s", p, strerror(errno));
			free(t);
		} else {
			int fd = open(p, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
				      mode == GIT_FILEMODE_BLOB_EXECUTABLE ? 0755 : 0644);
			if (fd < 0 || nn_write_all(fd, git_blob_rawcontent(blob),
						   (size_t)git_blob_rawsize(blob)) < 0)
				rc = nn_seterr(rs->err, "cannot write '%s': %s", p, strerror(errno));
			if (fd >= 0 && close(fd) < 0 && rc == 0)
				rc = nn_seterr(rs->err, "cannot write '%s': %s", p, strerror(errno));
		}
	}
	git_blob_free(blob);
	free(p);
	if (rc < 0) {
		rs->failed = 1;
		return -1;
	}
	return 0;
}

int nn_snapshot_restore(const char *repo_path, const char *commit, const char *dir, char *err)
{
	git_repository *repo = NULL;
	git_commit *c = NULL;
	git_tree *tree = NULL;
	struct restore rs;
	struct stat st;
	char *tmp = NULL, *old = NULL;
	git_oid oid;
	int rc = -1;

	git_libgit2_init();
	if (git_repository_open_ext(&repo, repo_path, GIT_REPOSITORY_OPEN_NO_SEARCH, NULL) < 0) {
		nn_seterr(err, "cannot open repository '%s': %s", repo_path, gerr());
		goto out;
	}
	if (resolve(repo, commit, &oid, err) < 0)
		goto out;
	if (git_commit_lookup(&c, repo, &oid) < 0 || git_commit_tree(&tree, c) < 0) {
		gfail(err, commit);
		goto out;
	}
	tmp = nn_xasprintf("%s.restore.XXXXXX", dir);
	if (!mkdtemp(tmp)) {
		nn_seterr(err, "cannot create a directory beside '%s': %s", dir, strerror(errno));
		free(tmp);
		tmp = NULL;
		goto out;
	}
	rs.repo = repo;
	rs.root = tmp;
	rs.err = err;
	rs.failed = 0;
	if (git_tree_walk(tree, GIT_TREEWALK_PRE, restore_entry, &rs) < 0) {
		if (!rs.failed)
			gfail(err, "cannot walk the snapshot");
		goto out;
	}
	if (chmod(tmp, 0755) < 0) {
		nn_seterr(err, "cannot chmod '%s': %s", tmp, strerror(errno));
		goto out;
	}
	if (lstat(dir, &st) == 0) {
		old = nn_xasprintf("%s.old.XXXXXX", dir);
		if (!mkdtemp(old) || rename(dir, old) < 0) {
			nn_seterr(err, "cannot move '%s' aside: %s", dir, strerror(errno));
			goto out;
		}
	}
	if (rename(tmp, dir) < 0) {
		nn_seterr(err, "cannot rename '%s' to '%s': %s", tmp, dir, strerror(errno));
		if (old)
			rename(old, dir);
		goto out;
	}
	free(tmp);
	tmp = NULL;
	rc = 0;
out:
	if (tmp)
		nn_storage_rmtree(tmp);
	if (old)
		nn_storage_rmtree(old);
	free(tmp);
	free(old);
	git_tree_free(tree);
	git_commit_free(c);
	git_repository_free(repo);
	git_libgit2_shutdown();
	return rc;
}

static int add_have(git_reference *r, void *arg)
{
	jv *arr = arg;
	git_object *obj = NULL;
	char hex[GIT_OID_HEXSZ + 1];
	int i, n;

	if (git_reference_peel(&obj, r, GIT_OBJECT_COMMIT) == 0) {
		git_oid_tostr(hex, sizeof hex, git_object_id(obj));
		n = jv_array_length(jv_copy(*arr));
		for (i = 0; i < n; i++) {
			jv e = jv_array_get(jv_copy(*arr), i);
			int same = !strcmp(jv_string_value(e), hex);
			jv_free(e);
			if (same)
				break;
		}
		if (i == n)
			*arr = jv_array_append(*arr, jv_string(hex));
		git_object_free(obj);
	}
	git_reference_free(r);
	return 0;
}

jv nn_snapshot_haves(const char *repo_path, char *err)
{
	git_repository *repo = NULL;
	jv arr = jv_array();
	struct stat st;

	if (stat(repo_path, &st) < 0)
		return arr;
	git_libgit2_init();
	if (git_repository_open_ext(&repo, repo_path, GIT_REPOSITORY_OPEN_NO_SEARCH, NULL) < 0) {
		nn_seterr(err, "cannot open repository '%s': %s", repo_path, gerr());
		jv_free(arr);
		git_libgit2_shutdown();
		return jv_invalid();
	}
	git_reference_foreach(repo, add_have, &arr);
	git_repository_free(repo);
	git_libgit2_shutdown();
	return arr;
}

struct packout {
	int fd;
	uint64_t bytes;
	int werr;
};

static int pack_chunk(void *buf, size_t size, void *arg)
{
	struct packout *po = arg;
	if (nn_write_all(po->fd, buf, size) < 0) {
		po->werr = errno;
		return -1;
	}
	po->bytes += size;
	return 0;
}

int nn_snapshot_pack(const char *repo_path, const char *commit, jv haves, const char *packpath,
		     uint64_t *bytes, char *err)
{
	git_repository *repo = NULL;
	git_packbuilder *pb = NULL;
	git_revwalk *walk = NULL;
	git_odb *odb = NULL;
	struct packout po = { -1, 0, 0 };
	git_oid oid;
	int rc = -1, i, n;

	git_libgit2_init();
	if (git_repository_open_ext(&repo, repo_path, GIT_REPOSITORY_OPEN_NO_SEARCH, NULL) < 0) {
		nn_seterr(err, "cannot open repository '%s': %s", repo_path, gerr());
		goto out;
	}
	if (resolve(repo, commit, &oid, err) < 0)
		goto out;
	if (git_repository_odb(&odb, repo) < 0 || git_revwalk_new(&walk, repo) < 0 ||
	    git_revwalk_push(walk, &oid) < 0) {
		gfail(err, "cannot walk history");
		goto out;
	}
	n = jv_get_kind(haves) == JV_KIND_ARRAY ? jv_array_length(jv_copy(haves)) : 0;
	for (i = 0; i < n; i++) {
		jv h = jv_array_get(jv_copy(haves), i);
		git_oid hid;
		git_commit *hc = NULL;
		if (jv_get_kind(h) == JV_KIND_STRING &&
		    git_oid_fromstr(&hid, jv_string_value(h)) == 0 &&
		    git_commit_lookup(&hc, repo, &hid) == 0) {
			git_revwalk_hide(walk, &hid);
			git_commit_free(hc);
		}
		jv_free(h);
	}
	if (git_packbuilder_new(&pb, repo) < 0 || git_packbuilder_insert_walk(pb, walk) < 0) {
		gfail(err, "cannot build a pack");
		goto out;
	}
	po.fd = open(packpath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (po.fd < 0) {
		nn_seterr(err, "cannot create '%s': %s", packpath, strerror(errno));
		goto out;
	}
	if (git_packbuilder_foreach(pb, pack_chunk, &po) < 0) {
		if (po.werr)
			nn_seterr(err, "cannot write '%s': %s", packpath, strerror(po.werr));
		else
			gfail(err, "cannot build a pack");
		goto out;
	}
	if (close(po.fd) < 0) {
		po.fd = -1;
		nn_seterr(err, "cannot write '%s': %s", packpath, strerror(errno));
		goto out;
	}
	po.fd = -1;
	if (bytes)
		*bytes = po.bytes;
	rc = 0;
out:
	if (po.fd >= 0)
		close(po.fd);
	if (rc < 0)
		unlink(packpath);
	git_packbuilder_free(pb);
	git_revwalk_free(walk);
	git_odb_free(odb);
	git_repository_free(repo);
	git_libgit2_shutdown();
	return rc;
}

/* Every object under tree is in odb. */
static int tree_complete(git_repository *repo, git_odb *odb, const git_oid *tree_id, char *err)
{
	git_tree *t;
	size_t i, n;
	int rc = 0;

	if (git_tree_lookup(&t, repo, tree_id) < 0)
		return nn_seterr(err, "pack incomplete: tree %s missing", git_oid_tostr_s(tree_id));
	n = git_tree_entrycount(t);
	for (i = 0; i < n && rc == 0; i++) {
		const git_tree_entry *e = git_tree_entry_byindex(t, i);
		if (git_tree_entry_type(e) == GIT_OBJECT_TREE)
			rc = tree_complete(repo, odb, git_tree_entry_id(e), err);
		else if (git_tree_entry_type(e) == GIT_OBJECT_BLOB &&
			 !git_odb_exists(odb, git_tree_entry_id(e)))
			rc = nn_seterr(err, "pack incomplete: '%s' missing", git_tree_entry_name(e));
	}
	git_tree_free(t);
	return rc;
}

int nn_snapshot_unpack(const char *repo_path, const char *packpath, const char *commit,
		       const char *ref, char *err)
{
	git_repository *repo = NULL;
	git_odb *odb = NULL;
	git_odb_writepack *wp = NULL;
	git_indexer_progress stats;
	git_commit *c = NULL;
	git_reference *r = NULL;
	char *buf = NULL;
	git_oid oid;
	ssize_t k;
	unsigned i;
	int fd = -1, rc = -1;

	memset(&stats, 0, sizeof stats);
	git_libgit2_init();
	if (open_or_init(&repo, repo_path, err) < 0)
		goto out;
	if (git_oid_fromstr(&oid, commit) < 0) {
		nn_seterr(err, "'%s' is not a commit id", commit);
		goto out;
	}
	fd = open(packpath, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		nn_seterr(err, "cannot open '%s': %s", packpath, strerror(errno));
		goto out;
	}
	if (git_repository_odb(&odb, repo) < 0 || git_odb_write_pack(&wp, odb, NULL, NULL) < 0) {
		gfail(err, "cannot receive a pack");
		goto out;
	}
	buf = nn_xmalloc(1 << 20);
	while ((k = read(fd, buf, 1 << 20)) != 0) {
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0) {
			nn_seterr(err, "cannot read '%s': %s", packpath, strerror(errno));
			goto out;
		}
		if (wp->append(wp, buf, (size_t)k, &stats) < 0) {
			gfail(err, "bad pack");
			goto out;
		}
	}
	if (wp->commit(wp, &stats) < 0) {
		gfail(err, "bad pack");
		goto out;
	}
	if (git_commit_lookup(&c, repo, &oid) < 0) {
		nn_seterr(err, "pack incomplete: commit %s missing", commit);
		goto out;
	}
	for (i = 0; i < git_commit_parentcount(c); i++)
		if (!git_odb_exists(odb, git_commit_parent_id(c, i))) {
			nn_seterr(err, "pack incomplete: parent of %s missing", commit);
			goto out;
		}
	if (tree_complete(repo, odb, git_commit_tree_id(c), err) < 0)
		goto out;
	if (git_reference_create(&r, repo, ref ? ref : SNAP_REF, &oid, 1, "nunet: snapshot received") < 0) {
		gfail(err, "cannot update the snapshot ref");
		goto out;
	}
	rc = 0;
out:
	if (wp)
		wp->free(wp);
	if (fd >= 0)
		close(fd);
	free(buf);
	git_reference_free(r);
	git_commit_free(c);
	git_odb_free(odb);
	git_repository_free(repo);
	git_libgit2_shutdown();
	return rc;
}

/* ---- dropping snapshots: refs removed, then what nothing reaches ---- */

static int push_ref(git_reference *r, void *arg)
{
	git_object *obj = NULL;
	if (git_reference_peel(&obj, r, GIT_OBJECT_COMMIT) == 0) {
		git_revwalk_push(arg, git_object_id(obj));
		git_object_free(obj);
	}
	git_reference_free(r);
	return 0;
}

/* Remove the regular files in dir older than cutoff (wall seconds): all
 * of them (loose), or the packs (pack-*) not named keep_stem*; the number
 * removed. */
static int prune_dir(const char *dir, time_t cutoff, const char *keep_stem, int loose)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;
	if (!d)
		return 0;
	while ((e = readdir(d))) {
		char *p;
		struct stat st;
		if (e->d_name[0] == '.')
			continue;
		if (!loose && (strncmp(e->d_name, "pack-", 5) || (keep_stem && !strncmp(e->d_name, keep_stem,
											 strlen(keep_stem)))))
			continue;
		p = nn_xasprintf("%s/%s", dir, e->d_name);
		if (lstat(p, &st) == 0 && S_ISREG(st.st_mode) && st.st_mtime < cutoff && unlink(p) == 0)
			n++;
		free(p);
	}
	closedir(d);
	return n;
}

int nn_snapshot_drop(const char *repo_path, jv refs, int64_t grace_s, int *removed, int *pruned, char *err)
{
	git_repository *repo = NULL;
	git_packbuilder *pb = NULL;
	git_revwalk *walk = NULL;
	char msg[NN_ERRLEN], *packdir = NULL, stem[64];
	time_t cutoff = time(NULL) - (time_t)grace_s;
	struct stat st;
	int rc = -1, n = jv_get_kind(refs) == JV_KIND_ARRAY ? jv_array_length(jv_copy(refs)) : 0;

	*removed = *pruned = 0;
	if (stat(repo_path, &st) < 0)
		return 0;		/* nothing was ever kept */
	if (nn_dlgit_load(msg) < 0)
		return nn_seterr(err, "%s", msg);
	git_libgit2_init();
	if (git_repository_open_ext(&repo, repo_path, GIT_REPOSITORY_OPEN_NO_SEARCH, NULL) < 0) {
		nn_seterr(err, "cannot open repository '%s': %s", repo_path, gerr());
		goto out;
	}
	for (int i = 0; i < n; i++) {
		jv r = jv_array_get(jv_copy(refs), i);
		if (jv_get_kind(r) == JV_KIND_STRING && git_reference_remove(repo, jv_string_value(r)) == 0)
			(*removed)++;
		jv_free(r);
	}
	/* one pack of what the remaining refs reach; then the older packs and
	 * loose objects go (those younger than the grace stay: a writer may
	 * not have pointed a ref at them yet) */
	if (git_revwalk_new(&walk, repo) < 0 || git_reference_foreach(repo, push_ref, walk) < 0 ||
	    git_packbuilder_new(&pb, repo) < 0 || git_packbuilder_insert_walk(pb, walk) < 0) {
		gfail(err, "cannot pack what the snapshots reach");
		goto out;
	}
	packdir = nn_xasprintf("%s/objects/pack", repo_path);
	if (git_packbuilder_write(pb, packdir, 0, NULL, NULL) < 0) {
		gfail(err, "cannot write the pack");
		goto out;
	}
	snprintf(stem, sizeof stem, "pack-%s.", git_packbuilder_name(pb));
	*pruned += prune_dir(packdir, cutoff, stem, 0);
	for (int i = 0; i < 256; i++) {
		char *d = nn_xasprintf("%s/objects/%02x", repo_path, i);
		*pruned += prune_dir(d, cutoff, NULL, 1);
		rmdir(d);
		free(d);
	}
	rc = 0;
out:
	free(packdir);
	git_packbuilder_free(pb);
	git_revwalk_free(walk);
	git_repository_free(repo);
	git_libgit2_shutdown();
	return rc;
}
