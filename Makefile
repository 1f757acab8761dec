# coupon_lock: PGXS build.
#
#   make                       build (links hiredis unless WITH_HIREDIS=no)
#   make install               install into the PostgreSQL that pg_config names
#   make installcheck          pg_regress + pg_isolation_regress against a running server
#
# Build without Redis support:  make WITH_HIREDIS=no   (the redis_* functions then
# raise SQLSTATE 0A000, and the test suite uses its "no hiredis" expected output)

EXTENSION  = coupon_lock
EXTVERSION = 1.1

# The build also works in another folder with VPATH naming the sources, as
# Debian's pg_buildext runs it (debian/rules): every file list is found
# under $(src), the sources' folder with a slash ('' for an in-tree build).
src = $(if $(VPATH),$(VPATH)/)
src_files = $(patsubst $(src)%,%,$(sort $(wildcard $(addprefix $(src),$(1)))))

MODULE_big = coupon_lock
OBJS       = $(patsubst %.c,%.o,$(call src_files,src/*.c))

# The install script of the current version is assembled from one piece per
# concern, in this order, so that each piece sits next to the C file that
# implements it.  roles.sql comes last: it grants on what the others create.
INSTALL_PIECES = install/coupon.sql \
                 $(filter-out install/coupon.sql install/roles.sql,$(call src_files,install/*.sql)) \
                 install/roles.sql

# Scripts of released versions are frozen in versions/ (versions/README.md):
# coupon_lock--1.0.sql exactly as 1.0 shipped it.  The upgrade script to the
# current version is assembled from versions/coupon_lock--1.0--1.1/, one piece
# per change of this release, in file-name order.
UPGRADE_PIECES = $(call src_files,versions/$(EXTENSION)--1.0--$(EXTVERSION)/*.sql)

DATA_built = $(EXTENSION)--$(EXTVERSION).sql $(EXTENSION)--1.0--$(EXTVERSION).sql
DATA       = $(call src_files,versions/$(EXTENSION)--*.sql)

REGRESS      = $(basename $(notdir $(call src_files,sql/*.sql)))
REGRESS_OPTS = --load-extension=$(EXTENSION)
ISOLATION      = $(basename $(notdir $(call src_files,specs/*.spec)))
ISOLATION_OPTS = --load-extension=$(EXTENSION)

# Export only what PostgreSQL looks up (src/exports.map).
SHLIB_LINK += -Wl,--version-script=$(srcdir)/src/exports.map

WITH_HIREDIS ?= yes
ifeq ($(WITH_HIREDIS),yes)
PG_CPPFLAGS += -DUSE_HIREDIS
SHLIB_LINK  += -lhiredis
endif

PG_CPPFLAGS += -DCL_LIBRARY_VERSION='"$(EXTVERSION)"'

PG_CFLAGS += -Wall -Wextra
# PostgreSQL's headers are not -Wextra clean (unused parameters of inline
# functions): include them as system headers so warnings are ours only.
PG_CPPFLAGS += -isystem $(includedir_server) -isystem $(includedir_internal)

# Debian's PGXS builds LLVM bitcode with clang when the server has JIT; the
# extension gains nothing from JIT inlining, so do not require clang.
override with_llvm = no

EXTRA_CLEAN = results output_iso regression.diffs regression.out

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

$(EXTENSION)--$(EXTVERSION).sql: $(INSTALL_PIECES)
	cat $^ > $@

$(EXTENSION)--1.0--$(EXTVERSION).sql: $(UPGRADE_PIECES)
	cat $^ > $@

$(shlib): src/exports.map

# Object files depend on the shared headers.
$(OBJS): $(call src_files,src/*.h)
# A VPATH build writes them to a src/ folder of its own.
ifdef VPATH
$(shell mkdir -p src)
endif

# The release archive for PGXN (README "Releasing"): coupon_lock-1.1.0.zip,
# from git archive of HEAD, so it holds exactly what is committed.  PGXN
# versions are semantic: the extension's 1.1 is the distribution's 1.1.0,
# which META.json must name.
DISTVERSION = $(EXTVERSION).0
DISTDIR    ?= .
dist:
	@grep -q '^   "version": "$(DISTVERSION)",' META.json || \
		{ echo "META.json does not give the version $(DISTVERSION)" >&2; exit 1; }
	git archive --format=zip --prefix=$(EXTENSION)-$(DISTVERSION)/ \
		--output=$(DISTDIR)/$(EXTENSION)-$(DISTVERSION).zip HEAD
.PHONY: dist

# The router extension (router/: its own control file and scripts) is built,
# installed and cleaned with this one, so "make install" installs both.
all: router-all
install: router-install
clean: router-clean
# In a VPATH build (pg_buildext) router/ is made in the build folder, with
# router/Makefile and its sources found through a VPATH of its own.
router_vpath = $(if $(VPATH),-f $(abspath $(VPATH))/router/Makefile VPATH=$(abspath $(VPATH))/router)
router-all router-install router-clean: router-%:
	$(if $(VPATH),mkdir -p router &&) $(MAKE) -C router $(router_vpath) PG_CONFIG=$(PG_CONFIG) $*
.PHONY: router-all router-install router-clean
