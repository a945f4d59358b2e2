/* A fake USB microphone for the tests: an ALSA capture PCM that offers ONE sample rate.
 *
 * ALSA's own plugins cannot fake this: every configurable PCM either converts rates (plug,
 * rate) or passes the client's rate to its slave (file, null, route, ...), and `share`, the
 * one that fixes a rate, asserts over a non-hardware slave. Real USB microphones often do
 * 44.1/48 kHz only, so this ioplug plugin (built by tests/rig/audio.py with the system's
 * libasound headers) refuses every rate but `rate`, like such a card's raw hw: device.
 *
 *   pcm_type.fixedrate { lib "/ABS/libasound_module_pcm_fixedrate.so" }
 *   pcm.usbmic { type fixedrate  infile "/ABS/tone48.raw"  rate 48000  [xrun_after FRAMES] }
 *
 * Samples come from `infile` (int16 little-endian, mono, raw), read when the application
 * takes them: not paced (the driver paces, as with the file plugin). Past the end (or from
 * a FIFO with no writer) it returns silence. If `infile` is a FIFO whose writer stops
 * writing, the capture stalls: a real read that stops inside libasound, which is what a
 * stalled device looks like to PortAudio. With `xrun_after`, the stream overruns once after
 * that many frames (PortAudio then reports an input overflow). Deleting `infile` unplugs the
 * device: the open stream fails with ENODEV, as a pulled USB card's does, and opening fails
 * until the file is back.
 */
#include <alsa/asoundlib.h>
#include <alsa/pcm_external.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct {
	snd_pcm_ioplug_t io;
	int fd;
	char *infile;
	long xrun_after;  /* frames; then one overrun, as when the reader falls behind (0 = never) */
	long delivered;
} fixed_t;

static int fixed_start(snd_pcm_ioplug_t *io) { (void)io; return 0; }
static int fixed_stop(snd_pcm_ioplug_t *io) { (void)io; return 0; }

/* Always one period ready: the data is read in transfer(), which may block (FIFO). */
static snd_pcm_sframes_t fixed_pointer(snd_pcm_ioplug_t *io)
{
	fixed_t *f = io->private_data;
	if (access(f->infile, F_OK) != 0)
		return -ENODEV;  /* unplugged */
	if (f->xrun_after > 0 && f->delivered >= f->xrun_after) {
		f->xrun_after = 0;
		return -EPIPE;
	}
	return (io->appl_ptr + io->period_size) % io->buffer_size;
}

static snd_pcm_sframes_t fixed_transfer(snd_pcm_ioplug_t *io, const snd_pcm_channel_area_t *areas,
					snd_pcm_uframes_t offset, snd_pcm_uframes_t size)
{
	fixed_t *f = io->private_data;
	char *dst = (char *)areas[0].addr + (areas[0].first + areas[0].step * offset) / 8;
	size_t want = size * 2, got = 0;
	while (got < want) {
		ssize_t n = read(f->fd, dst + got, want - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	memset(dst + got, 0, want - got);
	f->delivered += (long)size;
	return size;
}

static int fixed_close(snd_pcm_ioplug_t *io)
{
	fixed_t *f = io->private_data;
	if (f->fd >= 0)
		close(f->fd);
	free(f->infile);
	free(f);
	return 0;
}

static const snd_pcm_ioplug_callback_t fixed_callback = {
	.start = fixed_start,
	.stop = fixed_stop,
	.pointer = fixed_pointer,
	.transfer = fixed_transfer,
	.close = fixed_close,
};

SND_PCM_PLUGIN_DEFINE_FUNC(fixedrate)
{
	snd_config_iterator_t i, next;
	const char *infile = NULL;
	long rate = 48000, xrun_after = 0;
	int err;
	(void)root;
	snd_config_for_each(i, next, conf) {
		snd_config_t *n = snd_config_iterator_entry(i);
		const char *id;
		if (snd_config_get_id(n, &id) < 0)
			continue;
		if (!strcmp(id, "comment") || !strcmp(id, "type") || !strcmp(id, "hint"))
			continue;
		if (!strcmp(id, "infile")) {
			if (snd_config_get_string(n, &infile) < 0)
				return -EINVAL;
			continue;
		}
		if (!strcmp(id, "rate")) {
			if (snd_config_get_integer(n, &rate) < 0)
				return -EINVAL;
			continue;
		}
		if (!strcmp(id, "xrun_after")) {
			if (snd_config_get_integer(n, &xrun_after) < 0)
				return -EINVAL;
			continue;
		}
		SNDERR("Unknown field %s", id);
		return -EINVAL;
	}
	if (!infile || stream != SND_PCM_STREAM_CAPTURE)
		return -EINVAL;

	fixed_t *f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	f->infile = strdup(infile);
	f->xrun_after = xrun_after;
	/* O_NONBLOCK only for the open: a FIFO without a writer must not hang PortAudio's
	 * device scan. Reads then block (a FIFO with a silent writer stalls the capture). */
	f->fd = open(infile, O_RDONLY | O_NONBLOCK);
	if (f->fd >= 0)
		fcntl(f->fd, F_SETFL, fcntl(f->fd, F_GETFL) & ~O_NONBLOCK);
	if (f->fd < 0) {
		err = -errno;
		free(f->infile);
		free(f);
		return err;
	}
	f->io.version = SND_PCM_IOPLUG_VERSION;
	f->io.name = "safehouse fixed-rate test microphone";
	f->io.callback = &fixed_callback;
	f->io.private_data = f;
	f->io.poll_fd = f->fd;
	f->io.poll_events = POLLIN;
	err = snd_pcm_ioplug_create(&f->io, name, stream, mode);
	if (err < 0) {
		close(f->fd);
		free(f->infile);
		free(f);
		return err;
	}
	static const unsigned int access[] = { SND_PCM_ACCESS_RW_INTERLEAVED, SND_PCM_ACCESS_MMAP_INTERLEAVED };
	static const unsigned int format[] = { SND_PCM_FORMAT_S16_LE };
	if ((err = snd_pcm_ioplug_set_param_list(&f->io, SND_PCM_IOPLUG_HW_ACCESS, 2, access)) < 0 ||
	    (err = snd_pcm_ioplug_set_param_list(&f->io, SND_PCM_IOPLUG_HW_FORMAT, 1, format)) < 0 ||
	    (err = snd_pcm_ioplug_set_param_minmax(&f->io, SND_PCM_IOPLUG_HW_CHANNELS, 1, 1)) < 0 ||
	    (err = snd_pcm_ioplug_set_param_minmax(&f->io, SND_PCM_IOPLUG_HW_RATE, rate, rate)) < 0 ||
	    (err = snd_pcm_ioplug_set_param_minmax(&f->io, SND_PCM_IOPLUG_HW_PERIOD_BYTES, 64, 64 * 1024)) < 0 ||
	    (err = snd_pcm_ioplug_set_param_minmax(&f->io, SND_PCM_IOPLUG_HW_PERIODS, 2, 64)) < 0) {
		snd_pcm_ioplug_delete(&f->io);
		return err;
	}
	*pcmp = f->io.pcm;
	return 0;
}

SND_PCM_PLUGIN_SYMBOL(fixedrate);
