/*
 * dlgit — the git_* functions libcommon uses, each forwarding to libgit2
 * loaded with dlopen on first use (dlgit.h says why).  One table of
 * function pointers filled once under pthread_once.  The forwarders were
 * written from libgit2's headers (the compiler checks each against its
 * declaration); a function that libcommon starts calling must be added
 * here too.
 */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <git2.h>
#include "dlgit.h"
#include "util.h"

#define FUNCS(X) \
	X(git_blob_create_from_buffer) \
	X(git_blob_create_from_disk) \
	X(git_blob_free) \
	X(git_blob_lookup) \
	X(git_blob_rawcontent) \
	X(git_blob_rawsize) \
	X(git_checkout_options_init) \
	X(git_checkout_tree) \
	X(git_clone) \
	X(git_clone_options_init) \
	X(git_commit_create) \
	X(git_commit_free) \
	X(git_commit_lookup) \
	X(git_commit_parent_id) \
	X(git_commit_parentcount) \
	X(git_commit_tree) \
	X(git_commit_tree_id) \
	X(git_config_free) \
	X(git_config_set_int64) \
	X(git_error_last) \
	X(git_libgit2_init) \
	X(git_libgit2_shutdown) \
	X(git_object_free) \
	X(git_object_id) \
	X(git_object_peel) \
	X(git_odb_exists) \
	X(git_odb_free) \
	X(git_odb_hash) \
	X(git_odb_hashfile) \
	X(git_odb_write_pack) \
	X(git_oid_cpy) \
	X(git_oid_equal) \
	X(git_oid_fromstr) \
	X(git_oid_tostr) \
	X(git_oid_tostr_s) \
	X(git_packbuilder_foreach) \
	X(git_packbuilder_free) \
	X(git_packbuilder_insert_walk) \
	X(git_packbuilder_name) \
	X(git_packbuilder_new) \
	X(git_packbuilder_write) \
	X(git_reference_create) \
	X(git_reference_foreach) \
	X(git_reference_free) \
	X(git_reference_is_valid_name) \
	X(git_reference_name_to_id) \
	X(git_reference_peel) \
	X(git_reference_remove) \
	X(git_reference_target) \
	X(git_repository_config) \
	X(git_repository_free) \
	X(git_repository_head) \
	X(git_repository_init) \
	X(git_repository_odb) \
	X(git_repository_open_ext) \
	X(git_repository_set_head_detached) \
	X(git_revparse_single) \
	X(git_revwalk_free) \
	X(git_revwalk_hide) \
	X(git_revwalk_new) \
	X(git_revwalk_push) \
	X(git_signature_free) \
	X(git_signature_now) \
	X(git_status_list_entrycount) \
	X(git_status_list_free) \
	X(git_status_list_new) \
	X(git_status_options_init) \
	X(git_tree_entry_byindex) \
	X(git_tree_entry_filemode) \
	X(git_tree_entry_id) \
	X(git_tree_entry_name) \
	X(git_tree_entry_type) \
	X(git_tree_entrycount) \
	X(git_tree_free) \
	X(git_tree_lookup) \
	X(git_tree_walk) \
	X(git_treebuilder_free) \
	X(git_treebuilder_insert) \
	X(git_treebuilder_new) \
	X(git_treebuilder_write)

static struct {
#define MEMBER(f) __typeof__(f) *f;
	FUNCS(MEMBER)
#undef MEMBER
} fn;
static int loaded;
static char why[NN_ERRLEN];
static git_error load_error = { why, GIT_ERROR_OS };
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void load_once(void)
{
	void *h = dlopen(NN_DLGIT_SONAME, RTLD_NOW | RTLD_LOCAL);
	if (!h) {
		nn_seterr(why, "cannot load libgit2 (%s): install it (Debian: libgit2-1.5)", dlerror());
		return;
	}
#define LOOK(f) \
	if (!(*(void **)&fn.f = dlsym(h, #f))) { \
		nn_seterr(why, "cannot load libgit2: %s has no %s", NN_DLGIT_SONAME, #f); \
		dlclose(h); \
		return; \
	}
	FUNCS(LOOK)
#undef LOOK
	loaded = 1;
}

int nn_dlgit_load(char *err)
{
	pthread_once(&once, load_once);
	if (!loaded)
		return nn_seterr(err, "%s", why);
	return 0;
}

#define READY() (nn_dlgit_load(NULL) == 0)

int git_blob_create_from_buffer(git_oid *id, git_repository *repo, const void *buffer, size_t len)
{
	return READY() ? fn.git_blob_create_from_buffer(id, repo, buffer, len) : -1;
}

int git_blob_create_from_disk(git_oid *id, git_repository *repo, const char *path)
{
	return READY() ? fn.git_blob_create_from_disk(id, repo, path) : -1;
}

void git_blob_free(git_blob *blob)
{
	if (READY())
		fn.git_blob_free(blob);
}

int git_blob_lookup(git_blob **blob, git_repository *repo, const git_oid *id)
{
	return READY() ? fn.git_blob_lookup(blob, repo, id) : -1;
}

const void *git_blob_rawcontent(const git_blob *blob)
{
	return READY() ? fn.git_blob_rawcontent(blob) : NULL;
}

git_object_size_t git_blob_rawsize(const git_blob *blob)
{
	return READY() ? fn.git_blob_rawsize(blob) : (git_object_size_t)0;
}

int git_checkout_options_init(git_checkout_options *opts, unsigned int version)
{
	return READY() ? fn.git_checkout_options_init(opts, version) : -1;
}

int git_checkout_tree(git_repository *repo, const git_object *treeish, const git_checkout_options *opts)
{
	return READY() ? fn.git_checkout_tree(repo, treeish, opts) : -1;
}

int git_clone(git_repository **out, const char *url, const char *local_path, const git_clone_options *options)
{
	return READY() ? fn.git_clone(out, url, local_path, options) : -1;
}

int git_clone_options_init(git_clone_options *opts, unsigned int version)
{
	return READY() ? fn.git_clone_options_init(opts, version) : -1;
}

int git_commit_create(git_oid *id, git_repository *repo, const char *update_ref, const git_signature *author, const git_signature *committer, const char *message_encoding, const char *message, const git_tree *tree, size_t parent_count, const git_commit *parents[])
{
	return READY() ? fn.git_commit_create(id, repo, update_ref, author, committer, message_encoding, message, tree, parent_count, parents) : -1;
}

void git_commit_free(git_commit *commit)
{
	if (READY())
		fn.git_commit_free(commit);
}

int git_commit_lookup(git_commit **commit, git_repository *repo, const git_oid *id)
{
	return READY() ? fn.git_commit_lookup(commit, repo, id) : -1;
}

const git_oid *git_commit_parent_id(const git_commit *commit, unsigned int n)
{
	return READY() ? fn.git_commit_parent_id(commit, n) : NULL;
}

unsigned int git_commit_parentcount(const git_commit *commit)
{
	return READY() ? fn.git_commit_parentcount(commit) : (unsigned int)0;
}

int git_commit_tree(git_tree **tree_out, const git_commit *commit)
{
	return READY() ? fn.git_commit_tree(tree_out, commit) : -1;
}

const git_oid *git_commit_tree_id(const git_commit *commit)
{
	return READY() ? fn.git_commit_tree_id(commit) : NULL;
}

void git_config_free(git_config *cfg)
{
	if (READY())
		fn.git_config_free(cfg);
}

int git_config_set_int64(git_config *cfg, const char *name, int64_t value)
{
	return READY() ? fn.git_config_set_int64(cfg, name, value) : -1;
}

const git_error *git_error_last(void)
{
	return READY() ? fn.git_error_last() : &load_error;
}

int git_libgit2_init(void)
{
	return READY() ? fn.git_libgit2_init() : -1;
}

int git_libgit2_shutdown(void)
{
	return READY() ? fn.git_libgit2_shutdown() : -1;
}

void git_object_free(git_object *object)
{
	if (READY())
		fn.git_object_free(object);
}

const git_oid *git_object_id(const git_object *obj)
{
	return READY() ? fn.git_object_id(obj) : NULL;
}

int git_object_peel(git_object **peeled, const git_object *object, git_object_t target_type)
{
	return READY() ? fn.git_object_peel(peeled, object, target_type) : -1;
}

int git_odb_exists(git_odb *db, const git_oid *id)
{
	return READY() ? fn.git_odb_exists(db, id) : -1;
}

void git_odb_free(git_odb *db)
{
	if (READY())
		fn.git_odb_free(db);
}

int git_odb_hash(git_oid *out, const void *data, size_t len, git_object_t type)
{
	return READY() ? fn.git_odb_hash(out, data, len, type) : -1;
}

int git_odb_hashfile(git_oid *out, const char *path, git_object_t type)
{
	return READY() ? fn.git_odb_hashfile(out, path, type) : -1;
}

int git_odb_write_pack(git_odb_writepack **out, git_odb *db, git_indexer_progress_cb progress_cb, void *progress_payload)
{
	return READY() ? fn.git_odb_write_pack(out, db, progress_cb, progress_payload) : -1;
}

int git_oid_cpy(git_oid *out, const git_oid *src)
{
	return READY() ? fn.git_oid_cpy(out, src) : -1;
}

int git_oid_equal(const git_oid *a, const git_oid *b)
{
	return READY() ? fn.git_oid_equal(a, b) : -1;
}

int git_oid_fromstr(git_oid *out, const char *str)
{
	return READY() ? fn.git_oid_fromstr(out, str) : -1;
}

char *git_oid_tostr(char *out, size_t n, const git_oid *id)
{
	return READY() ? fn.git_oid_tostr(out, n, id) : NULL;
}

char *git_oid_tostr_s(const git_oid *oid)
{
	return READY() ? fn.git_oid_tostr_s(oid) : NULL;
}

int git_packbuilder_foreach(git_packbuilder *pb, git_packbuilder_foreach_cb cb, void *payload)
{
	return READY() ? fn.git_packbuilder_foreach(pb, cb, payload) : -1;
}

void git_packbuilder_free(git_packbuilder *pb)
{
	if (READY())
		fn.git_packbuilder_free(pb);
}

int git_packbuilder_insert_walk(git_packbuilder *pb, git_revwalk *walk)
{
	return READY() ? fn.git_packbuilder_insert_walk(pb, walk) : -1;
}

int git_packbuilder_new(git_packbuilder **out, git_repository *repo)
{
	return READY() ? fn.git_packbuilder_new(out, repo) : -1;
}

const char *git_packbuilder_name(git_packbuilder *pb)
{
	return READY() ? fn.git_packbuilder_name(pb) : NULL;
}

int git_packbuilder_write(git_packbuilder *pb, const char *path, unsigned int mode,
			  git_indexer_progress_cb progress_cb, void *progress_cb_payload)
{
	return READY() ? fn.git_packbuilder_write(pb, path, mode, progress_cb, progress_cb_payload) : -1;
}

int git_reference_remove(git_repository *repo, const char *name)
{
	return READY() ? fn.git_reference_remove(repo, name) : -1;
}

int git_reference_create(git_reference **out, git_repository *repo, const char *name, const git_oid *id, int force, const char *log_message)
{
	return READY() ? fn.git_reference_create(out, repo, name, id, force, log_message) : -1;
}

int git_reference_foreach(git_repository *repo, git_reference_foreach_cb callback, void *payload)
{
	return READY() ? fn.git_reference_foreach(repo, callback, payload) : -1;
}

void git_reference_free(git_reference *ref)
{
	if (READY())
		fn.git_reference_free(ref);
}

int git_reference_is_valid_name(const char *refname)
{
	return READY() ? fn.git_reference_is_valid_name(refname) : -1;
}

int git_reference_name_to_id(git_oid *out, git_repository *repo, const char *name)
{
	return READY() ? fn.git_reference_name_to_id(out, repo, name) : -1;
}

int git_reference_peel(git_object **out, const git_reference *ref, git_object_t type)
{
	return READY() ? fn.git_reference_peel(out, ref, type) : -1;
}

const git_oid *git_reference_target(const git_reference *ref)
{
	return READY() ? fn.git_reference_target(ref) : NULL;
}

int git_repository_config(git_config **out, git_repository *repo)
{
	return READY() ? fn.git_repository_config(out, repo) : -1;
}

void git_repository_free(git_repository *repo)
{
	if (READY())
		fn.git_repository_free(repo);
}

int git_repository_head(git_reference **out, git_repository *repo)
{
	return READY() ? fn.git_repository_head(out, repo) : -1;
}

int git_repository_init(git_repository **out, const char *path, unsigned is_bare)
{
	return READY() ? fn.git_repository_init(out, path, is_bare) : -1;
}

int git_repository_odb(git_odb **out, git_repository *repo)
{
	return READY() ? fn.git_repository_odb(out, repo) : -1;
}

int git_repository_open_ext(git_repository **out, const char *path, unsigned int flags, const char *ceiling_dirs)
{
	return READY() ? fn.git_repository_open_ext(out, path, flags, ceiling_dirs) : -1;
}

int git_repository_set_head_detached(git_repository *repo, const git_oid *committish)
{
	return READY() ? fn.git_repository_set_head_detached(repo, committish) : -1;
}

int git_revparse_single(git_object **out, git_repository *repo, const char *spec)
{
	return READY() ? fn.git_revparse_single(out, repo, spec) : -1;
}

void git_revwalk_free(git_revwalk *walk)
{
	if (READY())
		fn.git_revwalk_free(walk);
}

int git_revwalk_hide(git_revwalk *walk, const git_oid *commit_id)
{
	return READY() ? fn.git_revwalk_hide(walk, commit_id) : -1;
}

int git_revwalk_new(git_revwalk **out, git_repository *repo)
{
	return READY() ? fn.git_revwalk_new(out, repo) : -1;
}

int git_revwalk_push(git_revwalk *walk, const git_oid *id)
{
	return READY() ? fn.git_revwalk_push(walk, id) : -1;
}

void git_signature_free(git_signature *sig)
{
	if (READY())
		fn.git_signature_free(sig);
}

int git_signature_now(git_signature **out, const char *name, const char *email)
{
	return READY() ? fn.git_signature_now(out, name, email) : -1;
}

size_t git_status_list_entrycount(git_status_list *statuslist)
{
	return READY() ? fn.git_status_list_entrycount(statuslist) : (size_t)0;
}

void git_status_list_free(git_status_list *statuslist)
{
	if (READY())
		fn.git_status_list_free(statuslist);
}

int git_status_list_new(git_status_list **out, git_repository *repo, const git_status_options *opts)
{
	return READY() ? fn.git_status_list_new(out, repo, opts) : -1;
}

int git_status_options_init(git_status_options *opts, unsigned int version)
{
	return READY() ? fn.git_status_options_init(opts, version) : -1;
}

const git_tree_entry *git_tree_entry_byindex(const git_tree *tree, size_t idx)
{
	return READY() ? fn.git_tree_entry_byindex(tree, idx) : NULL;
}

git_filemode_t git_tree_entry_filemode(const git_tree_entry *entry)
{
	return READY() ? fn.git_tree_entry_filemode(entry) : (git_filemode_t)0;
}

const git_oid *git_tree_entry_id(const git_tree_entry *entry)
{
	return READY() ? fn.git_tree_entry_id(entry) : NULL;
}

const char *git_tree_entry_name(const git_tree_entry *entry)
{
	return READY() ? fn.git_tree_entry_name(entry) : NULL;
}

git_object_t git_tree_entry_type(const git_tree_entry *entry)
{
	return READY() ? fn.git_tree_entry_type(entry) : (git_object_t)0;
}

size_t git_tree_entrycount(const git_tree *tree)
{
	return READY() ? fn.git_tree_entrycount(tree) : (size_t)0;
}

void git_tree_free(git_tree *tree)
{
	if (READY())
		fn.git_tree_free(tree);
}

int git_tree_lookup(git_tree **out, git_repository *repo, const git_oid *id)
{
	return READY() ? fn.git_tree_lookup(out, repo, id) : -1;
}

int git_tree_walk(const git_tree *tree, git_treewalk_mode mode, git_treewalk_cb callback, void *payload)
{
	return READY() ? fn.git_tree_walk(tree, mode, callback, payload) : -1;
}

void git_treebuilder_free(git_treebuilder *bld)
{
	if (READY())
		fn.git_treebuilder_free(bld);
}

int git_treebuilder_insert(const git_tree_entry **out, git_treebuilder *bld, const char *filename, const git_oid *id, git_filemode_t filemode)
{
	return READY() ? fn.git_treebuilder_insert(out, bld, filename, id, filemode) : -1;
}

int git_treebuilder_new(git_treebuilder **out, git_repository *repo, const git_tree *source)
{
	return READY() ? fn.git_treebuilder_new(out, repo, source) : -1;
}

int git_treebuilder_write(git_oid *id, git_treebuilder *bld)
{
	return READY() ? fn.git_treebuilder_write(id, bld) : -1;
}
