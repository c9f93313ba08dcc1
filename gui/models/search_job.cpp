#include "gui/models/search_job.hpp"
